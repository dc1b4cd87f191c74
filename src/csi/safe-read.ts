// Reading a file the driver wrote itself but cannot trust any more (a record in the state
// directory, a file of a staging volume after a restart): no link is followed (O_NOFOLLOW), no
// FIFO waited on (O_NONBLOCK: the open returns at once and fstat refuses it), regular files only,
// never more than `maxBytes` — the size is checked before the buffer is allocated.
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';

export async function readRegularFile(path: string, maxBytes: number): Promise<Buffer> {
  const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new Error('not a regular file');
    if (st.size > maxBytes) throw new Error(`larger than ${maxBytes} bytes`);
    const buf = Buffer.alloc(st.size);
    const { bytesRead } = await fh.read(buf, 0, st.size, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}
