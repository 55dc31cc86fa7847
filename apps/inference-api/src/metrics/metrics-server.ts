import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';

export interface MetricsServerLogger {
  log(message: string): void;
  warn(message: string): void;
}

/**
 * `GET /metrics` on a port of its own. Behind NGINX a scrape of the API port would reach whichever
 * worker NGINX picked; here every worker has its own port (METRICS_PORT + its PM2 number), so
 * Prometheus scrapes each one. While a worker is replaced (`pm2 reload`), the old one still holds
 * the port until it has drained: the new one retries every `retryMs` until the port is free.
 */
export class MetricsServer {
  private readonly server: Server;
  private retry: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly registry: Registry,
    private readonly host: string,
    private readonly port: number,
    private readonly logger: MetricsServerLogger,
    private readonly retryMs = 1_000,
  ) {
    this.server = createServer((req, res) => {
      const path = req.url?.split('?')[0];
      if (req.method !== 'GET' || path !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('Not found: the metrics are at GET /metrics\n');
        return;
      }
      this.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
        (error: unknown) => res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`collecting metrics failed: ${String(error)}\n`),
      );
    });
    this.server.keepAliveTimeout = 65_000;
  }

  /** Resolves once listening, or after the first failure (it keeps retrying in the background). */
  start(): Promise<void> {
    return new Promise((resolve) => {
      let warned = false;
      const attempt = () => {
        if (this.closed) return resolve();
        const onError = (error: NodeJS.ErrnoException) => {
          this.server.off('listening', onListening);
          if (!warned) {
            warned = true;
            this.logger.warn(`metrics: cannot listen on ${this.host}:${this.port} (${error.code ?? error.message}); retrying every ${this.retryMs} ms`);
            resolve();
          }
          this.retry = setTimeout(attempt, this.retryMs);
          this.retry.unref();
        };
        const onListening = () => {
          this.server.off('error', onError);
          this.logger.log(`metrics on http://${this.host}:${this.port}/metrics`);
          resolve();
        };
        this.server.once('error', onError);
        this.server.once('listening', onListening);
        this.server.listen(this.port, this.host);
      };
      attempt();
    });
  }

  get listening(): boolean {
    return this.server.listening;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    if (!this.server.listening) return;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    // Prometheus keeps its connection alive between scrapes: do not wait for it.
    this.server.closeAllConnections();
    await closed;
  }
}
