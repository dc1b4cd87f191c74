// Reading a file that cannot be trusted (a CSI state record or staging file after a restart, a
// tenant-named file in a confined directory): no link is followed (O_NOFOLLOW), no FIFO waited on
// (O_NONBLOCK: the open returns at once and fstat refuses it), regular files only, never more than
// `maxBytes` — checked before the buffer is allocated, and again while reading, since the file may
// grow after fstat. Failures carry a `code`: the open's errno, or NOT_REGULAR / TOO_LARGE.
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';

export const NOT_REGULAR = 'ENOTREGULAR';
export const TOO_LARGE = 'ETOOLARGE';

function refusal(code: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code });
}

export async function readRegularFile(path: string, maxBytes: number): Promise<Buffer> {
  const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw refusal(NOT_REGULAR, 'not a regular file');
    const tooLarge = () => refusal(TOO_LARGE, `larger than ${maxBytes} bytes`);
    if (st.size > maxBytes) throw tooLarge();
    // One byte past the cap, to notice a file that grew after fstat.
    const buf = Buffer.alloc(Math.min(st.size, maxBytes) + 1);
    let n = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
      if (n > maxBytes) throw tooLarge();
      if (n === buf.length) break;
    }
    return buf.subarray(0, n);
  } finally {
    await fh.close();
  }
}
