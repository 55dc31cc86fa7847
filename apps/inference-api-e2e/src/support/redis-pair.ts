import { type FakeUpstream, startFakeUpstream } from '@infer/model-providers/testing';
import { type ApiServer, startApiServer } from './api-server.js';
import { fakeModelsYaml } from './load.js';
import { type RedisServer, startRedisServer } from './redis-server.js';

export interface RedisPair {
  readonly redis: RedisServer;
  readonly upstream: FakeUpstream;
  /** INSTANCE_ID a. */
  readonly a: ApiServer;
  /** INSTANCE_ID b. */
  readonly b: ApiServer;
  stop(): Promise<void>;
}

/**
 * A fake upstream (model "m", `tokens` per answer) and two API processes sharing a real redis-server,
 * response cache off: what two hosts look like to the stored responses and conversations.
 */
export async function startRedisPair(tokens: number): Promise<RedisPair> {
  const redis = await startRedisServer();
  const upstream = await startFakeUpstream({ tokens });
  const env = { CACHE_ENABLED: 'false', REDIS_URL: redis.url };
  const [a, b] = await Promise.all(
    ['a', 'b'].map((id) => startApiServer({ env: { ...env, INSTANCE_ID: id }, modelsYaml: fakeModelsYaml(upstream.url, 'm') })),
  );
  return {
    redis,
    upstream,
    a: a as ApiServer,
    b: b as ApiServer,
    async stop() {
      await Promise.all([a?.stop(), b?.stop()]);
      await upstream.close();
      await redis.stop();
    },
  };
}
