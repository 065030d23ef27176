// A new network namespace starts with "lo" down; runc brings it up so localhost works.
import * as libc from "../../ffi/libc";

const AF_INET = 2, SOCK_DGRAM = 2;
const SIOCGIFFLAGS = 0x8913, SIOCSIFFLAGS = 0x8914, IFF_UP = 1;

export function loopbackUp(): void {
  const fd = libc.socket(AF_INET, SOCK_DGRAM);
  try {
    const ifr = new Uint8Array(40); // struct ifreq: char name[16], then the flags union
    ifr.set(Buffer.from("lo"));
    libc.ioctl(fd, SIOCGIFFLAGS, ifr);
    const v = new DataView(ifr.buffer);
    v.setInt16(16, v.getInt16(16, true) | IFF_UP, true);
    libc.ioctl(fd, SIOCSIFFLAGS, ifr);
  } finally {
    libc.close(fd);
  }
}
