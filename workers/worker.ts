/**
 * Worker process entrypoint (docker-compose's `worker` service, and the processes tests spawn):
 * the same as `revoker worker`.
 */
import { runWorker } from '../src/runtime/run-worker.js';

runWorker().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`revoker worker: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
