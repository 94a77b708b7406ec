// SPDX-License-Identifier: GPL-2.0-only
// nodecount: a node program (V8's and libuv's threads, an epoll set, eventfds)
// that prints "ready", waits for SIGUSR1, then computes STEPS sums on its event
// loop, printing each; the same sums after a restart mean its state came back.
//
//   node nodecount.js [STEPS]
const steps = Number(process.argv[2] ?? 40);
let sum = 0n;
const idle = setInterval(() => {}, 1000);
process.on('SIGUSR1', () => {
  clearInterval(idle);
  let i = 0;
  const step = () => {
    for (let k = 0; k < 20000; k++) sum = (sum * 31n + BigInt(i * k)) % 1000000007n;
    process.stdout.write(`ok step ${i} sum ${sum}\n`);
    if (++i < steps) setTimeout(step, 10);
  };
  step();
});
process.stdout.write('ready\n');
