/** Rejects with `message` when `promise` has not settled within `ms`; the work itself is not cancelled. */
export function withTimeout<T>(promise: Promise<T>, ms: number, message = `no answer within ${ms / 1000} s`): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(message)), ms);
    promise.then(
      (value) => (clearTimeout(timer), resolve(value)),
      (error) => (clearTimeout(timer), reject(error)),
    );
  });
}
