import { twelveMegapixelJpeg, jpegOfAbout, noisyPng, smallJpegs } from '../fixtures.js';
import sharp from 'sharp';
import { writeFileSync } from 'node:fs';
let t=performance.now();
const big = await twelveMegapixelJpeg(); console.log('12MP', big.length, (performance.now()-t)|0, 'ms'); writeFileSync('/tmp/bench-12mp.jpg', big);
t=performance.now(); const j = await jpegOfAbout(); console.log('100k', j.bytes.length, j.quality, (performance.now()-t)|0); writeFileSync('/tmp/bench-100k.jpg', j.bytes);
t=performance.now(); const p = await noisyPng(); console.log('png', p.length, (performance.now()-t)|0);
t=performance.now(); const s = await smallJpegs(3); console.log('small', s.map(b=>b.length), (performance.now()-t)|0);
console.log(await sharp(p).metadata().then(m=>[m.width,m.height]));
