import http from 'node:http'; import fs from 'node:fs';
const file = '/tmp/bench-100k.jpg'; const size = fs.statSync(file).size;
const mode = process.argv[2] ?? 'stream';
const buf = fs.readFileSync(file);
http.createServer(async (req, res) => {
  res.setHeader('content-type','image/jpeg'); res.setHeader('content-length', size);
  if (mode === 'buffer') return res.end(buf);
  if (mode === 'fh') { const fh = await fs.promises.open(file,'r'); fh.createReadStream().pipe(res); return; }
  fs.createReadStream(file).pipe(res);
}).listen(Number(process.argv[3]), '127.0.0.1');
