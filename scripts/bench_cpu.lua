-- CPU backend benchmark: GEMM GFLOP/s, and prefill/decode tokens/s on a random ~100M model.
local args = require("tmrun.util.args")
local tmffi = require("tmrun.ffi")
local rm = require("tmrun.random_model")
local uv = require("luv")

local ffi, C = tmffi.ffi, tmffi.C

local opts = args.parse(arg, {
  usage = "tmrun bench_cpu.lua [--threads N] [--dtype fp16|bf16|fp32] [--prefill 512] [--decode 32]",
  options = {
    threads = { type = "int", default = 0, min = 0, max = 512, help = "threads (0: one per core)" },
    dtype = { type = "string", default = "fp16", choices = { "fp32", "fp16", "bf16" }, help = "weight dtype" },
    prefill = { type = "int", default = 512, min = 1, max = 8192, help = "prompt tokens" },
    decode = { type = "int", default = 32, min = 0, max = 4096, help = "decode steps" },
    reps = { type = "int", default = 3, min = 1, max = 100, help = "GEMM repetitions (best kept)" },
    preset = { type = "string", default = "100m", choices = { "100m", "tiny", "llama2-7b" } },
  },
})

local DT = { fp32 = C.TM_F32, fp16 = C.TM_F16, bf16 = C.TM_BF16 }
local threads = opts.threads == 0 and #uv.cpu_info() or opts.threads

local function now() return uv.hrtime() / 1e9 end

print(string.format("# tmrun bench_cpu: %s, %d threads, %s weights", uv.cpu_info()[1].model, threads, opts.dtype))
print()

-- Peak: measured FMA throughput (what the cores can issue), see tm_bench_fma_peak_cpu.
local peak = ffi.new("double[1]")
if C.tm_bench_fma_peak_cpu(threads, peak) == 0 then
  print(string.format("fp32 FMA peak (measured, %d threads): %.1f GFLOP/s", threads, peak[0]))
  print()
end

print("| GEMM m x n x k | dtype | GFLOP/s | % of peak |")
print("|---|---|---|---|")
local shapes = { { 1, 4096, 4096 }, { 16, 4096, 4096 }, { 128, 4096, 4096 }, { 512, 2048, 768 }, { 512, 768, 2048 },
  { 512, 4096, 4096 } }
for _, s in ipairs(shapes) do
  local g = ffi.new("double[1]")
  local st = C.tm_bench_gemm_cpu(s[1], s[2], s[3], DT[opts.dtype], threads, opts.reps, g)
  if st ~= 0 then error(ffi.string(C.tm_last_error())) end
  print(string.format("| %d x %d x %d | %s | %.1f | %.0f%% |", s[1], s[2], s[3], opts.dtype, g[0],
    peak[0] > 0 and 100 * g[0] / peak[0] or 0))
end
print()

local t0 = now()
local m = rm.open(opts.preset, { dtype = opts.dtype, threads = opts.threads, session_len = opts.prefill + opts.decode + 1 })
io.stderr:write(string.format("random %s model: %.1fM parameters, built in %.1f s\n", opts.preset,
  m:param_count() / 1e6, now() - t0))

local ctx = m:context()
local prompt = {}
for i = 1, opts.prefill do prompt[i] = (i * 7919) % m.vocab_size end
ctx:eval({ 1 }) -- warm the pool
ctx:reset()
t0 = now()
assert(ctx:eval(prompt))
local prefill_s = now() - t0
local flops = 2 * m:param_count() * opts.prefill
t0 = now()
for i = 1, opts.decode do assert(ctx:eval({ i % m.vocab_size })) end
local decode_s = now() - t0

print("| model | params | prefill tokens | prefill tok/s | prefill GFLOP/s | decode tok/s |")
print("|---|---|---|---|---|---|")
print(string.format("| random %s (%s) | %.1fM | %d | %.1f | %.1f | %.2f |", opts.preset, opts.dtype, m:param_count() / 1e6,
  opts.prefill, opts.prefill / prefill_s, flops / prefill_s / 1e9, opts.decode > 0 and opts.decode / decode_s or 0))
ctx:close()
m:close()
