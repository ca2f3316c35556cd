"""Linux system calls through one ctypes module, for every part of pyci that needs them."""
