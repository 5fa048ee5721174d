// File I/O with mtlskit's guarantees: reads that say which file failed, and atomic, all-or-nothing
// writes (temporary file in the same directory, fsync, rename); private keys 0600.
export * from './atomic.js';
