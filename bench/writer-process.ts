// The writer load's own process (forked by bench/writer-load.ts with tsx): see runWriterChild.
import { runWriterChild } from './writer-load';

runWriterChild();
