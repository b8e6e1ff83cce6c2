import http from 'node:http'; import fs from 'node:fs';
const file = '/tmp/bench-100k.jpg'; const size = fs.statSync(file).size;
fs.writeFileSync('/tmp/bench-meta.json', JSON.stringify({id:'x', name:'photo.jpg', size, sha256:'a'.repeat(64), pad:'x'.repeat(300)}));
const mode = process.argv[2];
http.createServer(async (req, res) => {
  res.setHeader('content-type','image/jpeg'); res.setHeader('content-length', size);
  if (mode.includes('meta')) JSON.parse(await fs.promises.readFile('/tmp/bench-meta.json','utf8'));
  if (mode.includes('metasync')) JSON.parse(fs.readFileSync('/tmp/bench-meta.json','utf8'));
  if (mode.startsWith('fhread')) { const fh = await fs.promises.open(file,'r'); const b = Buffer.allocUnsafe(size); await fh.read(b,0,size,0); await fh.close(); return res.end(b); }
  if (mode.startsWith('cbread')) { fs.open(file,'r',(e,fd)=>{ const b=Buffer.allocUnsafe(size); fs.read(fd,b,0,size,0,()=>{ fs.close(fd,()=>{}); res.end(b); }); }); return; }
  if (mode.startsWith('fh')) { const fh = await fs.promises.open(file,'r'); fh.createReadStream().pipe(res); return; }
  fs.createReadStream(file).pipe(res);
}).listen(Number(process.argv[3]), '127.0.0.1');
