// Public API of the GGUF writer and of the tiny built-in model.
export {
  encodeGguf,
  encodeTensorData,
  float16BitsToFloat32,
  float32ToFloat16Bits,
  GGML_TENSOR_TYPE_IDS,
  ggmlTensorByteSize,
  gguf,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_VALUE_TYPE_IDS,
  GGUF_VERSION,
  layoutGguf,
  writeGgufFile,
} from './gguf-writer.js';
export type {
  GgmlTensorType,
  GgufBigIntType,
  GgufFile,
  GgufLayout,
  GgufMetadataValue,
  GgufNumberType,
  GgufScalarType,
  GgufTensor,
} from './gguf-writer.js';
export {
  buildTinyLlamaGguf,
  DEFAULT_TINY_LLAMA_SPEC,
  ensureTinyLlamaGguf,
  LARGE_TINY_LLAMA_SPEC,
  resolveTinyLlamaSpec,
  TINY_LLAMA_CHAT_TEMPLATE,
  TINY_LLAMA_GGUF_FILE_NAME,
  TINY_LLAMA_TOKENS,
  tinyLlamaGgufFileName,
  writeTinyLlamaGguf,
} from './tiny-llama.js';
export type { TinyLlamaGgufInfo, TinyLlamaSpec } from './tiny-llama.js';
