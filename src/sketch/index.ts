export { TDigest, TDigestError, DEFAULT_COMPRESSION, type DigestState } from './TDigest.js';
export { Moments, MomentsError } from './Moments.js';
export { ClassCounts, ClassCountsError, MAX_CLASSES } from './ClassCounts.js';
export { TopK, TopKError, DEFAULT_TOPK_CAPACITY, MAX_TOPK_CAPACITY, MAX_LABEL_LENGTH } from './TopK.js';
export { FeatureProfile, FeatureProfileError, MAX_FEATURE_NAME, type FeatureKind, type FeatureOptions } from './FeatureProfile.js';
export {
  WindowProfile,
  WindowProfileError,
  EVENTS,
  MIN_WINDOW_MS,
  MAX_WINDOW_MS,
  MAX_FEATURES,
  MAX_SEGMENT_LABELS,
  MAX_EVENT_KINDS,
  MAX_LABEL_BYTES,
  type Segment,
} from './WindowProfile.js';
export {
  CodecError,
  FORMAT_VERSION,
  MAX_AGENT_ID_BYTES,
  MAX_WINDOWS_PER_BATCH,
  encodeBatch,
  decodeBatch,
  encodeDigest,
  decodeDigest,
  type Batch,
} from './codec.js';
