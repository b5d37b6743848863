export * from './checks';
export * from './accounts';
export * from './runs';
export * from './run-outcome';
export * from './watches';
export * from '../run-lifecycle';
export * from './notifications';
