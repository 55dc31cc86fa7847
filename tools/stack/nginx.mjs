// Renders deploy/nginx for a given listen port and list of API instances into a prefix directory,
// and finds the nginx binary. Used by tools/stack/stack.mjs and by the e2e tests
// (apps/inference-api-e2e/src/support/nginx.ts), so both run exactly the shipped configuration.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const nginxSourceDir = join(repoRoot, 'deploy/nginx');

/** The nginx binary: $NGINX_BIN, `nginx` on PATH, or Debian's /usr/sbin/nginx. */
export function nginxBinary() {
  if (process.env.NGINX_BIN) return process.env.NGINX_BIN;
  try {
    return execFileSync('sh', ['-c', 'command -v nginx'], { encoding: 'utf8' }).trim() || '/usr/sbin/nginx';
  } catch {
    if (existsSync('/usr/sbin/nginx')) return '/usr/sbin/nginx';
    throw new Error('nginx not found: install it (tools/scripts/install-system-deps.sh) or set NGINX_BIN');
  }
}

/**
 * Rewrites the `# stack:` lines of conf.d/inference-api.conf: the listen line, and in every upstream
 * block the server lines between `stack:servers-begin` and `stack:servers-end` (each new server
 * keeps the parameters of that block's first original line, e.g. max_fails/fail_timeout).
 *
 * @param {string} text
 * @param {{ listen: string | number, servers: readonly string[] }} options
 */
export function renderInferenceApiConf(text, options) {
  if (options.servers.length === 0) throw new Error('at least one upstream server is needed');
  const lines = text.split('\n');
  const listen = lines.findIndex((l) => l.includes('# stack:listen'));
  if (listen < 0 || !lines.some((l) => l.includes('# stack:servers-begin'))) throw new Error('conf.d/inference-api.conf: stack markers not found');
  const listenIndent = lines[listen].match(/^\s*/)?.[0] ?? '    ';
  const out = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (i === listen) {
      out.push(`${listenIndent}listen ${options.listen}; # stack:listen`);
      continue;
    }
    out.push(line);
    if (!line.includes('# stack:servers-begin')) continue;
    const end = lines.findIndex((l, j) => j > i && l.includes('# stack:servers-end'));
    if (end < 0) throw new Error('conf.d/inference-api.conf: stack:servers-begin without stack:servers-end');
    const original = lines.slice(i + 1, end).find((l) => /^\s*server\s/.test(l));
    const indent = original?.match(/^\s*/)?.[0] ?? '    ';
    const params = original?.replace(/^\s*server\s+\S+\s*/, '').replace(/;\s*$/, '') ?? '';
    for (const server of options.servers) out.push(`${indent}server ${server}${params ? ` ${params}` : ''};`);
    i = end - 1;
  }
  return out.join('\n');
}

/**
 * Copies deploy/nginx into `prefix` (nginx.conf, conf.d/, snippets/), sets the listen address and
 * the upstream servers, and creates logs/ and temp/. Returns the paths and the command line.
 *
 * @param {{ prefix: string, listen: string | number, servers: readonly string[] }} options
 */
export async function prepareNginx(options) {
  const prefix = resolve(options.prefix);
  await mkdir(join(prefix, 'logs'), { recursive: true });
  await mkdir(join(prefix, 'temp'), { recursive: true });
  await cp(join(nginxSourceDir, 'nginx.conf'), join(prefix, 'nginx.conf'));
  await cp(join(nginxSourceDir, 'snippets'), join(prefix, 'snippets'), { recursive: true });
  await cp(join(nginxSourceDir, 'conf.d'), join(prefix, 'conf.d'), { recursive: true });
  const confD = join(prefix, 'conf.d/inference-api.conf');
  await writeFile(confD, renderInferenceApiConf(await readFile(confD, 'utf8'), options));
  const conf = join(prefix, 'nginx.conf');
  const errorLog = join(prefix, 'logs/error.log');
  return {
    prefix,
    conf,
    errorLog,
    accessLog: join(prefix, 'logs/access.log'),
    pidFile: join(prefix, 'logs/nginx.pid'),
    /** Arguments for nginx; add ['-g', 'daemon off;'] to keep it in the foreground. */
    args: ['-p', prefix, '-c', conf, '-e', errorLog],
  };
}
