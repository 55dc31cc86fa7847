/** On SIGTERM/SIGINT: run `close` (stop the server), then exit 0 (1 if closing failed). Shared by the bare servers. */
export function exitOnSignal(close: () => Promise<unknown>): void {
  const stop = (): void => {
    close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
