import type { ModelsConfig } from '@infer/model-providers';

export interface ModelCard {
  readonly id: string;
  readonly object: 'model';
  readonly created: number;
  readonly owned_by: string;
}

/** The public model list (GET /v1/models), computed once at boot. */
export class ModelCatalog {
  readonly list: { readonly object: 'list'; readonly data: readonly ModelCard[] };
  private readonly byId: ReadonlyMap<string, ModelCard>;
  private readonly ttl: ReadonlyMap<string, number | undefined>;
  /** Alias → model name (models file `aliases`). */
  private readonly aliases: ReadonlyMap<string, string>;

  constructor(config: ModelsConfig, created = Math.floor(Date.now() / 1000)) {
    const data = config.models.map((m) => ({
      id: m.name,
      object: 'model' as const,
      created,
      owned_by: m.ownedBy ?? m.deployments[0]?.provider ?? 'unknown',
    }));
    this.list = { object: 'list', data };
    this.byId = new Map(data.map((card) => [card.id, card]));
    this.ttl = new Map(config.models.map((m) => [m.name, m.cacheTtlSeconds]));
    this.aliases = new Map(config.models.flatMap((m) => (m.aliases ?? []).map((alias): [string, string] => [alias, m.name])));
  }

  /** The model a client's `model` names: itself, or the model it is an alias of; undefined when unknown. */
  resolve(name: string): string | undefined {
    return this.byId.has(name) ? name : this.aliases.get(name);
  }

  get(id: string): ModelCard | undefined {
    return this.byId.get(id);
  }

  /** The models file's per-model cache TTL, if set. */
  cacheTtlSeconds(id: string): number | undefined {
    return this.ttl.get(id);
  }

  get defaultModel(): string {
    const first = this.list.data[0];
    if (!first) throw new Error('no models configured');
    return first.id;
  }
}
