import { describe, expect, it } from 'vitest';
import { ProviderConfigError } from '../contract/errors.js';
import type { ModelProvider } from '../contract/model-provider.js';
import { defineProvider, silentLogger } from '../registry/provider-definition.js';
import { ModelProviderRegistry } from '../registry/provider-registry.js';
import { createDeployments, parseModelsConfig } from './models-file.js';

const echoDefinition = defineProvider<{ url: string; retries: number }>({
  kind: 'echo',
  description: 'test',
  optionsSchema: {
    type: 'object',
    required: ['url'],
    additionalProperties: false,
    properties: { url: { type: 'string' }, retries: { type: 'integer', default: 2 } },
  },
  create: (options) => ({ label: `echo(${options.url},${options.retries})` }) as unknown as ModelProvider,
});

describe('models file', () => {
  it('parses the minimal LiteLLM-like shape', () => {
    const config = parseModelsConfig(
      `models:\n  - name: my-model\n    deployments:\n      - provider: echo\n        url: http://x\n      - provider: echo\n        url: http://y\n        weight: 3\n`,
      'models.yaml',
      '/tmp',
    );
    const registry = new ModelProviderRegistry([echoDefinition]);
    const deployments = createDeployments(config, registry, { env: {}, logger: silentLogger });
    expect(deployments.map((d) => [d.id, d.weight, d.provider.label])).toEqual([
      ['my-model#0', 1, 'echo(http://x,2)'],
      ['my-model#1', 3, 'echo(http://y,2)'],
    ]);
  });

  it('reads aliases; an alias must name one model and be no model\'s name', () => {
    const yaml = (a: string, b: string) =>
      `models:\n  - name: a\n    aliases: [${a}]\n    deployments:\n      - provider: echo\n        url: http://x\n  - name: b\n    aliases: [${b}]\n    deployments:\n      - provider: echo\n        url: http://y\n`;
    expect(parseModelsConfig(yaml('gpt-4o-mini, small', 'gpt-4o'), 'm.yaml', '/tmp').models.map((m) => m.aliases)).toEqual([['gpt-4o-mini', 'small'], ['gpt-4o']]);
    expect(() => parseModelsConfig(yaml('x', 'x'), 'm.yaml', '/tmp')).toThrow(/the alias "x" is given to both "a" and "b"/);
    expect(() => parseModelsConfig(yaml('b', 'y'), 'm.yaml', '/tmp')).toThrow(/the alias "b" of model "a" is a model's name/);
    expect(() => parseModelsConfig(yaml('"has space"', 'y'), 'm.yaml', '/tmp')).toThrow(ProviderConfigError);
  });

  it('reads priority (default 0) and does not pass it to the provider as an option', () => {
    const config = parseModelsConfig(
      'models:\n  - name: m\n    deployments:\n      - {provider: echo, url: http://own}\n      - {provider: echo, url: http://paid, priority: 1}\n',
      'f',
      '/',
    );
    const registry = new ModelProviderRegistry([echoDefinition]);
    // The echo options schema has additionalProperties: false: a leaked `priority` would throw.
    const deployments = createDeployments(config, registry, { env: {}, logger: silentLogger });
    expect(deployments.map((d) => [d.id, d.priority, d.provider.label])).toEqual([
      ['m#0', 0, 'echo(http://own,2)'],
      ['m#1', 1, 'echo(http://paid,2)'],
    ]);
  });

  it('rejects a priority that is not an integer >= 0, naming the field', () => {
    const withPriority = (value: string) => `models:\n  - name: a\n    deployments: [{provider: echo, url: u}, {provider: echo, url: v, priority: ${value}}]\n`;
    expect(() => parseModelsConfig(withPriority('-1'), 'f', '/')).toThrow(/models\[0\]\.deployments\[1\]\.priority must be >= 0/);
    expect(() => parseModelsConfig(withPriority('1.5'), 'f', '/')).toThrow(/models\[0\]\.deployments\[1\]\.priority must be integer/);
    expect(() => parseModelsConfig(withPriority('high'), 'f', '/')).toThrow(/models\[0\]\.deployments\[1\]\.priority must be integer/);
    expect(() => parseModelsConfig(withPriority('2'), 'f', '/')).not.toThrow();
  });

  it('names the offending path in errors', () => {
    expect(() => parseModelsConfig('models:\n  - name: a\n', 'models.yaml', '/tmp')).toThrow(/models\[0\] must have required property 'deployments'/);
    expect(() => parseModelsConfig('models: [', 'models.yaml', '/tmp')).toThrow(/not valid YAML/);
    expect(() => parseModelsConfig('models:\n  - name: a\n    deployments: [{provider: echo, weight: 0}]\n', 'f', '/')).toThrow(
      /models\[0\]\.deployments\[0\]\.weight must be > 0/,
    );
    const twice = 'models:\n  - {name: a, deployments: [{provider: echo, url: u}]}\n  - {name: a, deployments: [{provider: echo, url: u}]}\n';
    expect(() => parseModelsConfig(twice, 'f', '/')).toThrow(/listed twice/);
  });

  it('rejects unknown kinds and bad options with the deployment path', () => {
    const registry = new ModelProviderRegistry([echoDefinition]);
    const unknown = parseModelsConfig('models:\n  - {name: a, deployments: [{provider: nope}]}\n', 'f', '/');
    expect(() => createDeployments(unknown, registry, { env: {}, logger: silentLogger })).toThrow(
      /models\[0\]\.deployments\[0\]\.provider: unknown provider kind "nope" \(known: echo\)/,
    );
    const bad = parseModelsConfig('models:\n  - {name: a, deployments: [{provider: echo, url: 1, extra: true}]}\n', 'f', '/');
    expect(() => createDeployments(bad, registry, { env: {}, logger: silentLogger })).toThrow(ProviderConfigError);
    expect(() => createDeployments(bad, registry, { env: {}, logger: silentLogger })).toThrow(/\.url must be string/);
  });
});
