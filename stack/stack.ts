// The real test stack on loopback: etcd, kube-apiserver, kube-controller-manager, a worker node
// (containerd, kubelet, kube-scheduler), an OpenBao or Vault dev server, PostgreSQL, and Ferry
// installed from its Helm chart. Used by the end-to-end tests and the demo.
//   npm run stack -- up [--flavor openbao|vault] [--operator chart|process|none] [--no-node]
//                                                  start everything, write .stack/env.json
//   npm run stack -- env                           print shell exports for kubectl / bao / vault
//   npm run stack -- restart-operator              restart the operator (pods, or the local process
//                                                  from the current checkout)
//   npm run stack -- down                          stop everything, remove the temporary directory
import { parseArgs } from 'node:util';
import { errorMessage } from '../src/errors.ts';
import { loadStackEnv, restartOperator, stackDown, stackUp } from './lib/stack.ts';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    flavor: { type: 'string' },
    operator: { type: 'string', default: 'chart' },
    'no-node': { type: 'boolean', default: false },
  },
});
const cmd = positionals[0] ?? 'up';

try {
  if (cmd === 'up') {
    const flavor = values.flavor ?? process.env.FERRY_VAULT_FLAVOR ?? 'openbao';
    if (flavor !== 'openbao' && flavor !== 'vault') {
      throw new Error(`unknown flavor '${flavor}': use --flavor openbao or --flavor vault`);
    }
    const operator = values.operator;
    if (operator !== 'chart' && operator !== 'process' && operator !== 'none') {
      throw new Error(
        `unknown --operator '${operator}': use chart (helm install on the node), process or none`,
      );
    }
    const env = await stackUp({
      flavor,
      operator,
      node: !values['no-node'],
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
      ...(env.node
        ? [
            `export FERRY_TEST_IMAGE=${env.node.images.test}`,
            `export FERRY_IMAGE=${env.node.images.ferry}`,
            `export CONTAINER_RUNTIME_ENDPOINT=unix://${env.node.containerdSocket}`,
          ]
        : []),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } else {
    throw new Error(`unknown command '${cmd}': use up, down or env`);
  }
} catch (err) {
  process.stderr.write(`[stack] ${errorMessage(err)}\n`);
  process.exitCode = 1;
}
