import { setFlagsFromString } from 'node:v8';

/**
 * V8 tuning for a request/response server, applied before anything else is loaded (main.ts imports
 * this module first).
 *
 * `--no-allocation-site-pretenuring`: V8 allocates objects of an allocation site straight into the
 * old generation once enough of them survived a scavenge. Under load, sites on the request path get
 * pretenured (objects that happened to be in flight during a scavenge), and those old-space objects
 * then keep the young objects of later requests alive until the next full mark-compact: whole
 * request graphs (IncomingMessage, ServerResponse, undici's parsed headers, promises) were being
 * promoted, ~1.5 MB per scavenge, with a major GC every second. Measured on the bench's miss path
 * with the cache disabled (one worker, c=16): 57 -> 50 µs of CPU per request, scavenges 3 ms -> 0.4 ms,
 * RSS after the run 250 -> 185 MB. Nothing a request keeps is meant to outlive it, so V8 loses
 * nothing by not guessing.
 */
setFlagsFromString('--no-allocation-site-pretenuring');

/**
 * `--heap-growing-percent=100`: after a full GC the old generation may grow to twice its live size
 * before the next one. On a host with this much memory V8 lets it grow up to four times, which the
 * memory cache turns into RSS: under a miss load every stored entry outlives a few scavenges, gets
 * promoted and dies in the old generation when the LRU drops it. Measured on the bench's miss path
 * (one worker, c=16, 8 alternating rounds against the same build without it): peak RSS 231 -> 152 MB,
 * throughput unchanged (0.998x); 75 cost 2.4% for 7 MB less. Unlike the young-generation size
 * (package.json `nodeArgs`), V8 reads this one at every GC, so it can be set here.
 */
setFlagsFromString('--heap-growing-percent=100');
