/** The `tools` field of a request, for the item schema of its route (chat's nested form, or Responses' flat one). */
export function toolsOf<const Item>(item: Item) {
  return {
    type: 'array',
    nullable: true,
    maxItems: 128,
    items: item,
    description:
      'Functions the model may call. Served by models whose provider does tool calling (`openai-compatible` upstreams); ' +
      'for other models (the in-process llama.cpp provider) a request with tools is refused (400, `unsupported_parameter`).',
  } as const;
}
