// The real test stack on loopback: etcd, kube-apiserver, kube-controller-manager, an OpenBao or
// Vault dev server, and PostgreSQL. Used by the end-to-end tests and the demo.
//   npm run stack -- up [--flavor openbao|vault]   start everything, write .stack/env.json
//   npm run stack -- env                           print shell exports for kubectl / bao / vault
//   npm run stack -- restart-operator              run the operator from the current checkout again
//   npm run stack -- down                          stop everything, remove the temporary directory
import { parseArgs } from 'node:util';
import { errorMessage } from '../src/errors.ts';
import { loadStackEnv, restartOperator, stackDown, stackUp } from './lib/stack.ts';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { flavor: { type: 'string' }, 'no-operator': { type: 'boolean', default: false } },
});
const cmd = positionals[0] ?? 'up';

try {
  if (cmd === 'up') {
    const flavor = values.flavor ?? process.env.FERRY_VAULT_FLAVOR ?? 'openbao';
    if (flavor !== 'openbao' && flavor !== 'vault') {
      throw new Error(`unknown flavor '${flavor}': use --flavor openbao or --flavor vault`);
    }
    const env = await stackUp({
      flavor,
      operator: !values['no-operator'],
      log: (m) => process.stderr.write(`[stack] ${m}\n`),
    });
    process.stderr.write(`[stack] up: apiserver ${env.apiServer}, ${env.flavor} ${env.vaultAddr}\n`);
    process.stderr.write(
      '[stack] run `eval "$(npm run -s stack -- env)"` to point kubectl and the Vault CLI at it\n',
    );
  } else if (cmd === 'restart-operator') {
    const env = await restartOperator((m) => process.stderr.write(`[stack] ${m}\n`));
    process.stderr.write(`[stack] operator restarted (pid ${env.operator?.pid}, log ${env.operator?.log})\n`);
  } else if (cmd === 'down') {
    await stackDown((m) => process.stderr.write(`[stack] ${m}\n`));
  } else if (cmd === 'env') {
    const env = loadStackEnv();
    const lines = [
      `export KUBECONFIG=${env.kubeconfig}`,
      `export VAULT_ADDR=${env.vaultAddr}`,
      `export VAULT_TOKEN=${env.vaultToken}`,
      `export BAO_ADDR=${env.vaultAddr}`,
      `export BAO_TOKEN=${env.vaultToken}`,
      `export PGHOST=127.0.0.1 PGPORT=${env.postgres.port} PGUSER=${env.postgres.user} PGPASSWORD=${env.postgres.password} PGDATABASE=${env.postgres.database}`,
      `export PATH=${env.binDirs.join(':')}:$PATH`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } else {
    throw new Error(`unknown command '${cmd}': use up, down or env`);
  }
} catch (err) {
  process.stderr.write(`[stack] ${errorMessage(err)}\n`);
  process.exitCode = 1;
}
