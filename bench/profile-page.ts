/**
 * Where a page's server time goes, measured: the production server (`node bin/start.js`) runs with
 * `--cpu-prof` while `--connections` signed-in readers load one page, and every CPU sample taken
 * while serving is attributed to what it was doing (YAML parsing of plan files, SQL splitting with
 * libpg-query, React rendering, the pg driver, GC, …), in milliseconds of CPU per request.
 * Samples of the start-up (module loading, the build check) and idle time are left out.
 *
 *   node --import tsx bench/profile-page.ts --path '/plans/008-add-active-org-tracking?target=sandbox'
 *
 * It uses the data folder `npm run bench` left (default .data/bench), so run the bench first.
 * Async stacks end at each await, so a sample is named by the library it ran in, or by the app
 * function nearest the top of its stack; docs/benchmarks.md reads these numbers.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { getOnce, loadRoute, readDemoAccount, signIn, startServerProcess } from './http-load';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface Attribution {
  requests: number;
  /** CPU while serving (idle and start-up left out), per request. */
  busyMsPerRequest: number;
  categories: { name: string; ms: number; msPerRequest: number; share: number }[];
  /** The app functions nearest the top of the stacks in "app code". */
  appFunctions: { name: string; ms: number }[];
}

const LIBRARIES: [RegExp, string][] = [
  [/yaml\/dist/, 'YAML parsing'],
  [/libpg-query|^wasm:\/\//, 'SQL splitting (libpg-query)'],
  [/node_modules\/zod\//, 'zod validation'],
  [/react-dom/, 'React SSR render'],
  [/turbo-stream/, 'turbo-stream (loader data into the page)'],
  [/node_modules\/(pg|pg-protocol|pg-pool|pg-types)\//, 'pg driver (protocol, rows)'],
  [/node_modules\/drizzle-orm\//, 'Drizzle query building'],
  [/node_modules\/(@remix-run|express|router|react-router)/, 'Remix / Express'],
  [/node_modules\/canonicalize|node:crypto/, 'hashing, canonical JSON'],
];

export function attributeProfile(profile: CpuProfile, requests: number): Attribution {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const timeOf = new Map<number, number>();
  profile.samples.forEach((id, index) => timeOf.set(id, (timeOf.get(id) ?? 0) + (profile.timeDeltas[index] ?? 0)));

  const categories = new Map<string, number>();
  const appFunctions = new Map<string, number>();
  const add = (map: Map<string, number>, key: string, us: number) => map.set(key, (map.get(key) ?? 0) + us);
  for (const [id, us] of timeOf) {
    const stack: ProfileNode['callFrame'][] = [];
    for (let current: number | undefined = id; current !== undefined; current = parent.get(current)) stack.push(byId.get(current)!.callFrame);
    const leaf = stack[0]!;
    if (leaf.functionName === '(idle)') continue;
    // Start-up: the top-level evaluation of bin/start.js and the modules it loads.
    if (stack.some((frame) => frame.url.endsWith('/bin/start.js') || frame.functionName === 'evaluate')) continue;
    if (leaf.functionName === '(garbage collector)') {
      add(categories, 'garbage collection', us);
      continue;
    }
    const library = stack.map((frame) => LIBRARIES.find(([pattern]) => pattern.test(frame.url))?.[1]).find((name) => name !== undefined);
    if (library === 'YAML parsing') {
      // YAML is parsed synchronously: the app function that asked is still on the stack.
      const caller = stack.find((frame) => frame.url.includes('/build/server/'))?.functionName || 'unknown caller';
      add(categories, `YAML parsing, in ${caller}`, us);
      continue;
    }
    if (library) {
      add(categories, library, us);
      continue;
    }
    const app = stack.find((frame) => frame.url.includes('/build/server/'));
    if (app) {
      add(categories, 'app code', us);
      add(appFunctions, app.functionName || '(anonymous)', us);
    } else if (!leaf.url) {
      add(categories, 'native (I/O syscalls, V8)', us);
    } else {
      add(categories, 'Node internals (streams, sockets, timers)', us);
    }
  }
  const busyUs = [...categories.values()].reduce((sum, us) => sum + us, 0);
  return {
    requests,
    busyMsPerRequest: round(busyUs / 1000 / requests),
    categories: [...categories.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([name, us]) => ({ name, ms: Math.round(us / 1000), msPerRequest: round(us / 1000 / requests), share: round((100 * us) / busyUs) })),
    appFunctions: [...appFunctions.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 12)
      .map(([name, us]) => ({ name, ms: Math.round(us / 1000) })),
  };
}

const round = (value: number) => Math.round(value * 10) / 10;

export async function profilePage(input: { root: string; dataDir: string; path: string; connections: number; durationS: number }): Promise<Attribution> {
  const profileDir = fs.mkdtempSync(path.join(os.tmpdir(), 'runsheet-profile-'));
  try {
    const server = await startServerProcess(input.root, input.dataDir, { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] });
    let requests = 0;
    try {
      const cookie = await signIn(server, readDemoAccount(input.dataDir, 'viewer'));
      const first = await getOnce(server, input.path, cookie);
      if (first.status !== 200) throw new Error(`GET ${input.path} answered ${first.status}`);
      const load = await loadRoute(server, input.path, cookie, { connections: input.connections, durationS: input.durationS, warmupRequests: 1 });
      // The first request, the warm-up (one per connection) and the timed ones; some of the last
      // were still being served when the load stopped, and are served (and sampled) before exit.
      requests = 1 + input.connections + load.requests + input.connections;
    } finally {
      await server.stop();
    }
    // The main thread's profile is the largest; worker threads write their own, smaller ones.
    const files = fs.readdirSync(profileDir).filter((name) => name.endsWith('.cpuprofile'));
    const main = files.map((name) => path.join(profileDir, name)).sort((a, b) => fs.statSync(b).size - fs.statSync(a).size)[0];
    if (!main) throw new Error('the server wrote no CPU profile');
    return attributeProfile(JSON.parse(fs.readFileSync(main, 'utf8')) as CpuProfile, requests);
  } finally {
    fs.rmSync(profileDir, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  const { values } = parseArgs({
    options: {
      path: { type: 'string' },
      'data-dir': { type: 'string', default: path.join('.data', 'bench') },
      connections: { type: 'string', default: '50' },
      duration: { type: 'string', default: '10' },
    },
  });
  if (!values.path) {
    process.stderr.write("Usage: node --import tsx bench/profile-page.ts --path '/plans/…?target=sandbox' [--data-dir .data/bench] [--connections 50] [--duration 10]\n");
    process.exit(2);
  }
  const result = await profilePage({
    root: path.resolve(import.meta.dirname, '..'),
    dataDir: path.resolve(values['data-dir']!),
    path: values.path,
    connections: Number(values.connections),
    durationS: Number(values.duration),
  });
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  process.exit(0);
}
