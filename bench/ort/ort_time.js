// ort_time.js: times one ONNX model under ONNX Runtime (onnxruntime-node), for
// bench/bench_inference.py. Reads the input batch as raw float32 from a file,
// runs a warm-up and then REPS timed runs, writes the first output as raw
// float32 (so the caller can check ONNX Runtime computed what PyTorch did) and
// prints {"ms": best, "threads": T} on standard output.
//
//   node ort_time.js MODEL.onnx INPUT_NAME N,C,H,W IN.f32 OUT.f32 REPS THREADS
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const ort = require(path.join(__dirname, 'node_modules', 'onnxruntime-node'));

async function main() {
  const [model, inputName, dims, inPath, outPath, reps, threads] = process.argv.slice(2);
  if (!threads) throw new Error('usage: node ort_time.js MODEL.onnx INPUT_NAME N,C,H,W IN.f32 OUT.f32 REPS THREADS');
  const shape = dims.split(',').map(Number);
  const buf = fs.readFileSync(inPath);
  const data = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: Number(threads), interOpNumThreads: 1, graphOptimizationLevel: 'all',
  });
  const feeds = { [inputName]: new ort.Tensor('float32', data, shape) };
  let out = await session.run(feeds);  // warm-up
  let best = Infinity;
  for (let i = 0; i < Number(reps); i++) {
    const t0 = process.hrtime.bigint();
    out = await session.run(feeds);
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const y = out[session.outputNames[0]].data;
  fs.writeFileSync(outPath, Buffer.from(y.buffer, y.byteOffset, y.byteLength));
  process.stdout.write(JSON.stringify({ ms: best, threads: Number(threads) }) + '\n');
}

main().catch((e) => { process.stderr.write(`ort_time.js: ${e.message}\n`); process.exit(1); });
