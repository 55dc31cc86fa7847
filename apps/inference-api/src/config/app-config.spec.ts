import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { anonymousKeys, keyDigest } from '../common/api-keys.js';
import { ConfigValidationError, loadAppConfig } from './app-config.js';

describe('loadAppConfig', () => {
  it('has embedded defaults for everything', () => {
    const config = loadAppConfig({});
    expect(config.port).toBe(3000);
    expect(config.modelsFile).toBeUndefined();
    expect(config.redis).toBeUndefined();
    expect(config.cache.ttlSeconds).toBe(60);
    expect(config.trustProxy).toBe('loopback');
    expect(config.instanceId).toMatch(/:\d+$/);
  });

  it('coerces and validates typed values', () => {
    const config = loadAppConfig({ PORT: '8080', LOG_REQUESTS: 'false', REDIS_URL: 'redis://127.0.0.1:6379', TRUST_PROXY: '2' });
    expect(config.port).toBe(8080);
    expect(config.logRequests).toBe(false);
    expect(config.redis).toEqual({ url: 'redis://127.0.0.1:6379', timeoutMs: 500, required: true });
    expect(config.trustProxy).toBe(2);
  });

  it('reads API_KEYS as a list, and never shows it in an error', () => {
    expect(loadAppConfig({}).apiKeys).toEqual([]);
    expect(loadAppConfig({ API_KEYS: ' sk-one, sk-two ,sk-one,' }).apiKeys).toEqual(anonymousKeys(['sk-one', 'sk-two']));
    expect(() => loadAppConfig({ API_KEYS: 'sk-one,sk two' })).toThrow(/API_KEYS must be keys without spaces, separated by commas \(value not shown\)/);
    expect(() => loadAppConfig({ API_KEYS: 'sk-secret,,x' })).toThrow(ConfigValidationError);
    try {
      loadAppConfig({ API_KEYS: 'sk-secret,,x' });
    } catch (e) {
      expect((e as Error).message).not.toContain('sk-secret');
    }
  });

  it('adds the named keys of API_KEYS_FILE (a key in both is the named one); a bad or missing file fails the boot', () => {
    const dir = mkdtempSync(join(tmpdir(), 'keys-'));
    const file = join(dir, 'keys.yaml');
    writeFileSync(file, 'keys:\n  - name: team\n    key: sk-shared-key\n    rpm: 3\n');
    const keys = loadAppConfig({ API_KEYS: 'sk-anon-key,sk-shared-key', API_KEYS_FILE: file }).apiKeys;
    expect(keys.map((k) => [k.name, k.digest, k.rpm])).toEqual([
      [undefined, keyDigest('sk-anon-key'), undefined],
      ['team', keyDigest('sk-shared-key'), 3],
    ]);
    expect(() => loadAppConfig({ API_KEYS_FILE: join(dir, 'missing.yaml') })).toThrow(/Invalid configuration: API_KEYS_FILE .*missing\.yaml cannot be read \(ENOENT\)/);
    writeFileSync(file, 'keys:\n  - name: team\n    key: sk-secret-key\n    rpm: many\n');
    expect(() => loadAppConfig({ API_KEYS_FILE: file })).toThrow(ConfigValidationError);
    expect(() => loadAppConfig({ API_KEYS_FILE: file })).toThrow(/keys\[0\] \("team"\)\.rpm must be integer/);
  });

  it('gives each PM2 worker its own metrics port', () => {
    expect(loadAppConfig({}).metrics).toBeUndefined();
    expect(loadAppConfig({ METRICS_PORT: '9464' }).metrics).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(loadAppConfig({ METRICS_PORT: '9464', NODE_APP_INSTANCE: '3', METRICS_HOST: '0.0.0.0' }).metrics).toEqual({ host: '0.0.0.0', port: 9467 });
    // NODE_APP_INSTANCE means other things to other tools: only read with METRICS_PORT.
    expect(loadAppConfig({ NODE_APP_INSTANCE: 'staging' }).metrics).toBeUndefined();
    expect(() => loadAppConfig({ METRICS_PORT: '9464', NODE_APP_INSTANCE: 'staging' })).toThrow(/NODE_APP_INSTANCE must be a worker number/);
    expect(() => loadAppConfig({ METRICS_PORT: '65535', NODE_APP_INSTANCE: '1' })).toThrow(/must be <= 65535/);
  });

  it('reads CORS_ORIGINS as *, a list of origins, or nothing', () => {
    expect(loadAppConfig({}).corsOrigins).toBeUndefined();
    expect(loadAppConfig({ CORS_ORIGINS: '*' }).corsOrigins).toBe('*');
    expect(loadAppConfig({ CORS_ORIGINS: 'https://app.example, http://localhost:5173/' }).corsOrigins).toEqual(['https://app.example', 'http://localhost:5173']);
    expect(() => loadAppConfig({ CORS_ORIGINS: 'app.example' })).toThrow(/CORS_ORIGINS must match pattern/);
  });

  it('lists every bad variable with its value', () => {
    let error: unknown;
    try {
      loadAppConfig({ PORT: 'eighty', LOG_LEVEL: 'loud', REDIS_URL: 'localhost:6379' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigValidationError);
    const message = (error as Error).message;
    expect(message).toContain('PORT must be integer (got "eighty")');
    expect(message).toContain('LOG_LEVEL must be equal to one of the allowed values (got "loud")');
    expect(message).toContain('REDIS_URL must be redis[s]://');
  });

  it('checks REDIS_URL and TRUST_PROXY before anything uses them, never showing a Redis password', () => {
    const message = (env: Record<string, string>): string => {
      try {
        loadAppConfig(env);
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigValidationError);
        return (error as Error).message;
      }
      return 'no error';
    };
    for (const url of ['redis://default:S3cretPass@127.0.0.1:63790x', 'redis://:S3cretPass', 'redis://h:99999', 'redis://h:6379/abc', 'S3cretPass@host:6379']) {
      const text = message({ REDIS_URL: url });
      expect(text, url).toContain('REDIS_URL must be');
      expect(text, url).not.toContain('S3cretPass');
    }
    for (const url of ['redis://127.0.0.1:6379', 'rediss://user:pw@cache.internal:6380/2', 'redis://h/']) expect(message({ REDIS_URL: url }), url).toBe('no error');
    expect(message({ TRUST_PROXY: 'garbage' })).toContain('TRUST_PROXY must be');
    for (const value of ['10.0.0.0/33', '10.0.0.0/0', '::/0', '10.0.0.0/255.0.255.0']) expect(message({ TRUST_PROXY: value }), value).toContain(JSON.stringify(value));
    for (const value of ['true', 'false', '2', 'loopback', '10.0.0.0/8, 192.168.1.7', 'loopback,fd00::/8', '10.0.0.0/255.0.0.0']) {
      expect(message({ TRUST_PROXY: value }), value).toBe('no error');
    }
  });
});
