import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';

/** Test double: the parts of a ServerResponse that ResponseClient watches, with drop() (client gone) and finish(). */
export function fakeResponse(): ServerResponse & { drop(): void; finish(): void } {
  const res = new EventEmitter() as EventEmitter & { destroyed: boolean; writableFinished: boolean; drop(): void; finish(): void };
  res.destroyed = false;
  res.writableFinished = false;
  res.drop = () => {
    res.destroyed = true;
    res.emit('close');
  };
  res.finish = () => {
    res.writableFinished = true;
    res.emit('close');
  };
  return res as unknown as ServerResponse & { drop(): void; finish(): void };
}
