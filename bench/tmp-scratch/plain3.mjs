import http from 'node:http'; import fs from 'node:fs';
const file = '/tmp/bench-100k.jpg'; const size = fs.statSync(file).size;
const mode = process.argv[2];
http.createServer(async (req, res) => {
  res.setHeader('content-type','image/jpeg'); res.setHeader('content-length', size);
  const fh = await fs.promises.open(file,'r');
  if (mode === 'hwm') fh.createReadStream({ highWaterMark: size, start: 0, end: size - 1 }).pipe(res);
  else if (mode === 'hwm256') fh.createReadStream({ highWaterMark: 256*1024, start: 0, end: size - 1 }).pipe(res);
  else if (mode === 'end') fh.createReadStream({ start: 0, end: size - 1 }).pipe(res);
}).listen(Number(process.argv[3]), '127.0.0.1');
