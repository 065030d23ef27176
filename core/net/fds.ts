// Telling fds a parent handed us from the ones Bun's runtime opened for itself.
//
// Bun opens its epoll instance and an eventfd before any of our code runs, taking the lowest free
// fds: started without fd 3 (or 4), that is what sits there. Writing to or closing them takes the
// event loop down, so an inherited fd is only trusted when it is a real file of some type: anonymous
// inodes (epoll, eventfd, timerfd) have no file type bits in st_mode.
import { fstatSync } from "node:fs";

const S_IFMT = 0o170000;

/** Open, and a pipe, socket, file or device (something a parent can pass), not an anon inode. */
export function isInheritedFd(fd: number): boolean {
  try {
    return (fstatSync(fd).mode & S_IFMT) !== 0;
  } catch {
    return false;
  }
}

export function isSocketFd(fd: number): boolean {
  try {
    return fstatSync(fd).isSocket();
  } catch {
    return false;
  }
}
