// Hello-world comparison worker for benchmarks and the workerd harness: the
// cheapest possible redirect, to measure workerd's own per-request overhead
// against the Rust/wasm edge worker.
export default {
  fetch() {
    return Response.redirect("https://example.com/landing", 302);
  },
};
