/**
 * Layer rules for Runsheet, checked by dependency-cruiser (`npm run lint:layers`, and
 * tests/integration/layer-rules.test.ts).
 *
 * From the top down: the front ends (ui, web, cli) sit on boot (the composition root), which sits on
 * the engine, which sits on the domain, which sits on the store/runtime. A layer may import the layers
 * below it, never the ones above; only the front ends may touch Remix or React.
 *
 * Paths are relative to the repository root.
 */

/** Remix routes and React components: what the browser and the HTTP handler render. */
const UI = ['^app/routes/', '^app/components/', '^app/root\\.tsx$', '^app/entry\\.(client|server)\\.tsx$'];
/** HTTP plumbing: sessions, guards, the Origin check and the Express server. */
const WEB = ['^app/web/', '^app/auth/', '^server/'];
/** The command line. */
const CLI = ['^cli/'];
/** The composition root that starts the runtime. */
const BOOT = ['^app/boot/'];
/** Drives runs: claims, steps, gates, crash recovery. */
const ENGINE = ['^app/engine/'];
/** Plans, checks, run logs, targets and friends: the rules of the product, free of framework code. */
const DOMAIN = ['^app/(plans|checks|runs|targets|sql|steps|accounts|audit|sandbox|api|notifications)/'];
/** The bottom: database, paths, environment, configuration. */
const STORE = ['^app/runtime/', '^db/', '^runsheet\\.config\\.ts$'];

/**
 * Remix and React, whether resolved into node_modules or (when resolution fails) left as a bare name.
 * `react/` and `react-dom/` end at a slash so that e.g. `@tanstack/react-table` does not match.
 */
const FRAMEWORK = [
  '(^|/)node_modules/(@remix-run|react|react-dom)/',
  '^(@remix-run/|react(-dom)?(/|$))',
];

/** Server-only modules (`*.server.ts`, `*.server.tsx`), which must never reach the client bundle. */
const SERVER_MODULE = '\\.server\\.tsx?$';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment:
        'Import cycles make load order fragile and blur which layer owns what; type-only imports count because they couple the modules just the same.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'domain-imports-no-framework-or-upper-layer',
      severity: 'error',
      comment:
        'The domain is the product’s rules: it must run under the engine, the CLI and the tests alike, so it may not know Remix, React or any layer above it.',
      from: { path: DOMAIN },
      to: { path: [...FRAMEWORK, ...UI, ...WEB, ...CLI, ...BOOT, ...ENGINE] },
    },
    {
      name: 'engine-imports-no-framework-or-front-end',
      severity: 'error',
      comment:
        'The engine drives runs for both the web app and the CLI, so it may not depend on Remix, React, a front end or the composition root that wires it.',
      from: { path: ENGINE },
      to: { path: [...FRAMEWORK, ...UI, ...WEB, ...CLI, ...BOOT] },
    },
    {
      name: 'store-is-the-bottom',
      severity: 'error',
      comment:
        'The store/runtime is what every other layer stands on; an import upwards from it turns the layering into a cycle.',
      from: { path: STORE },
      to: { path: [...UI, ...WEB, ...CLI, ...BOOT, ...ENGINE, ...DOMAIN] },
    },
    {
      name: 'boot-below-front-ends',
      severity: 'error',
      comment:
        'Boot starts the runtime for every front end, so it may not reach back into the UI, the web layer, the server, the CLI, Remix or React.',
      from: { path: BOOT },
      to: { path: [...UI, ...WEB, ...CLI, '^server/', ...FRAMEWORK] },
    },
    {
      name: 'cli-beside-web',
      severity: 'error',
      comment:
        'The CLI is a front end beside the web app: it shares boot and what lies below, never the web app’s routes, sessions, Remix or React.',
      from: { path: CLI },
      to: { path: [...UI, '^app/web/', '^app/auth/', ...FRAMEWORK] },
    },
    {
      name: 'no-server-module-in-components',
      severity: 'error',
      comment:
        'Components are bundled for the browser; a .server module there either breaks the client build or leaks server code, so data comes in through route loaders (a type-only import of the shape a loader returns is erased, and allowed).',
      from: { path: '^app/components/' },
      to: { path: SERVER_MODULE, dependencyTypesNot: ['type-only'] },
    },
  ],
  options: {
    // Type-only imports count: they couple modules as much as value imports do.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    doNotFollow: { path: 'node_modules' },
    exclude: {
      path: ['\\.test\\.tsx?$', '^tests/', '^bench/', '^build/', '^\\.data/'],
    },
    moduleSystems: ['es6', 'cjs'],
    enhancedResolveOptions: {
      // `../runs/run-log.server` and `./routes/signing-key[.]pem` name files whose real extension is
      // left off: enhanced-resolve tries the name as is, then with each extension appended in turn
      // (`run-log.server.ts`, `signing-key[.]pem.ts`).
      extensions: ['.ts', '.tsx', '.js', '.mjs', '.json'],
      // Packages such as @remix-run/* publish their entry points through "exports".
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
    skipAnalysisNotInRules: true,
  },
};
