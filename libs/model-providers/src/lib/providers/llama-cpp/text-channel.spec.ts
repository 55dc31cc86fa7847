import { describe, expect, it } from 'vitest';
import { TextChannel } from './text-channel.js';

describe('TextChannel', () => {
  it('delivers pushed text in order and ends', async () => {
    const channel = new TextChannel();
    const next = channel.next();
    channel.push('a');
    expect(await next).toBe('a');
    channel.push('b');
    channel.end();
    expect(await channel.next()).toBe('b');
    expect(await channel.next()).toBeUndefined();
  });

  it('coalesces text pushed while the consumer is busy into one pending string', async () => {
    const channel = new TextChannel();
    for (let i = 0; i < 1000; i++) channel.push('x');
    channel.push('');
    expect(await channel.next()).toBe('x'.repeat(1000));
  });

  it('delivers a failure before pending text, and ignores pushes after the end', async () => {
    const channel = new TextChannel();
    channel.push('pending');
    channel.fail(new Error('aborted'));
    await expect(channel.next()).rejects.toThrow('aborted');
    const ended = new TextChannel();
    ended.end();
    ended.push('late');
    expect(await ended.next()).toBeUndefined();
  });
});
