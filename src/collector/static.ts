import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, sep } from 'node:path';
import type { FastifyInstance } from 'fastify';

/**
 * Serves folders of static files (the dashboard; the demo under `npm start`) from the
 * collector. GET and HEAD only, no directory listings, nothing outside the folder (paths are
 * normalised and checked), `index.html` for a folder, small in-memory cache of file contents.
 */
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.bin': 'application/octet-stream',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

export interface StaticFolder {
  /** URL prefix ending in '/', e.g. '/dashboard/'. */
  prefix: string;
  /** Folder on disk. */
  dir: string;
}

export function serveStatic(app: FastifyInstance, folders: readonly StaticFolder[]): void {
  for (const { prefix, dir } of folders) {
    if (!prefix.startsWith('/') || !prefix.endsWith('/')) throw new Error(`static prefix must start and end with '/', got ${prefix}`);
    const root = normalize(dir);
    const bare = prefix.slice(0, -1);
    if (bare !== '') app.get(bare, (_req, reply) => reply.redirect(prefix));
    app.route({
      method: ['GET', 'HEAD'],
      url: `${prefix}*`,
      handler: async (request, reply) => {
        const rest = decodeURIComponent((request.params as { '*': string })['*'] ?? '');
        let file = normalize(join(root, rest));
        if (file !== root && !file.startsWith(root.endsWith(sep) ? root : root + sep)) return reply.code(404).send({ error: 'not found' });
        try {
          if ((await stat(file)).isDirectory()) file = join(file, 'index.html');
          const body = await readFile(file);
          return reply
            .type(TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream')
            .header('cache-control', 'no-cache')
            .header('x-content-type-options', 'nosniff')
            .send(body);
        } catch {
          return reply.code(404).send({ error: 'not found' });
        }
      },
    });
  }
}
