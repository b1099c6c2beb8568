// Baseline L: the limit of the runtime. Every request gets the same 302, no I/O, no parsing.
export default {
  fetch() {
    return new Response(null, { status: 302, headers: { location: "https://bench.test/landing" } });
  },
};
