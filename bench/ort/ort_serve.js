// ort_serve.js: keeps one ONNX Runtime session (onnxruntime-node) open and
// times it on request, for bench/bench_zoo.py. The session lives as long as
// the process so that each round of the benchmark pays only for the runs it
// times, not for node's start-up and the session's graph optimizations (a
// second or more on the large models), which would stretch the rounds and
// let the contenders drift apart in time.
//
//   node ort_serve.js MODEL.onnx INPUT_NAME N,C,H,W IN.f32 OUT.f32 THREADS
//
// On start: reads the input batch (raw float32), creates the session, runs it
// once, writes the first output to OUT.f32 (raw float32, so the caller can
// check ONNX Runtime computes what PyTorch does) and prints
// {"ready": true, "version": V}. Then, for every line "RUNS WARMUP" on
// standard input, runs WARMUP untimed and RUNS timed calls and prints
// {"times": [ms, ...]}. Ends at the end of standard input.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');
const ort = require(path.join(__dirname, 'node_modules', 'onnxruntime-node'));

function say(obj) { process.stdout.write(JSON.stringify(obj) + '\n'); }

async function main() {
  const [model, inputName, dims, inPath, outPath, threads] = process.argv.slice(2);
  if (!threads) throw new Error('usage: node ort_serve.js MODEL.onnx INPUT_NAME N,C,H,W IN.f32 OUT.f32 THREADS');
  const shape = dims.split(',').map(Number);
  const buf = fs.readFileSync(inPath);
  const data = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: Number(threads), interOpNumThreads: 1, graphOptimizationLevel: 'all',
  });
  const feeds = { [inputName]: new ort.Tensor('float32', data, shape) };
  const out = await session.run(feeds);
  const y = out[session.outputNames[0]].data;
  fs.writeFileSync(outPath, Buffer.from(y.buffer, y.byteOffset, y.byteLength));
  const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, 'node_modules', 'onnxruntime-node', 'package.json')));
  say({ ready: true, version: pkg.version });
  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    const [runs, warmup] = line.trim().split(/\s+/).map(Number);
    for (let i = 0; i < warmup; i++) await session.run(feeds);
    const times = [];
    for (let i = 0; i < runs; i++) {
      const t0 = process.hrtime.bigint();
      await session.run(feeds);
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    say({ times });
  }
}

main().catch((e) => { process.stderr.write(`ort_serve.js: ${e.message}\n`); process.exit(1); });
