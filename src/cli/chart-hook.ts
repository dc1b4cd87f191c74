// `node src/cli/chart-hook.ts upgrade-crds|uninstall`: the chart's Helm hook Jobs (see
// src/command/chart-hooks.ts). --timeout (a Go duration, e.g. 30s or 1m30s) bounds the whole run;
// past it the Job's pod fails and Helm reports the hook as failed instead of waiting forever.
import { parseArgs } from 'node:util';
import { removeFinalizers, upgradeCrds } from '../command/chart-hooks.ts';
import { errorMessage } from '../errors.ts';
import { parseDuration } from '../template/duration.ts';
import { kubeClient, secretSafeLogger } from './common.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    kubeconfig: { type: 'string' },
    timeout: { type: 'string', default: '60s' },
    'log-level': { type: 'string', default: 'info' },
  },
});
const logger = secretSafeLogger(values['log-level']);
const timeoutNs = parseDuration(values.timeout);
const timeoutMs = timeoutNs === undefined ? Number.NaN : Number(timeoutNs / 1_000_000n);
const hook = positionals[0];

if (positionals.length !== 1 || (hook !== 'upgrade-crds' && hook !== 'uninstall')) {
  logger.fatal({ args: positionals }, 'usage: chart-hook.ts upgrade-crds|uninstall [--timeout=DURATION]');
  process.exitCode = 2;
} else if (!(timeoutMs > 0)) {
  logger.fatal({ timeout: values.timeout }, '--timeout must be a positive duration such as 30s');
  process.exitCode = 2;
} else {
  const deadline = setTimeout(() => {
    logger.fatal({ hook, timeout: values.timeout }, 'hook timed out');
    process.exit(1);
  }, timeoutMs);
  const client = kubeClient(values.kubeconfig, process.env, `ferry-${hook}`);
  try {
    if (hook === 'upgrade-crds') logger.info({ crds: await upgradeCrds(client) }, 'CRDs applied');
    else logger.info({ objects: await removeFinalizers(client) }, 'finalizers removed');
  } catch (err) {
    logger.fatal({ hook, err: errorMessage(err) }, 'hook failed');
    process.exitCode = 1;
  } finally {
    clearTimeout(deadline);
    await client.close();
  }
}
