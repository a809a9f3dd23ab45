"""Models wenda runs itself: the e5 encoder in torch, later the reader."""
