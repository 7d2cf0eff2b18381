-- Convert a HuggingFace model folder into a tmrun (TurboMind-style) workspace.
local args = require("tmrun.util.args")
local convert = require("tmrun.convert")

local opts = args.parse(arg, {
  usage = "tmrun convert.lua MODEL_NAME HF_DIR [--dst-path ./workspace] [--tp N] [--dtype fp16|bf16|fp32]",
  positional = { "model_name", "hf_dir" },
  options = {
    ["dst-path"] = { type = "string", default = "./workspace", help = "workspace folder to write" },
    tp = { type = "int", default = 1, min = 1, max = 64, help = "tensor-parallel ranks" },
    dtype = { type = "string", choices = { "fp32", "fp16", "bf16" }, help = "weight dtype (default: the checkpoint's)" },
    ["session-len"] = { type = "int", min = 1, help = "session_len in config.ini" },
    ["model-format"] = { type = "string", default = "hf", choices = { "hf", "llama", "awq" },
      help = "input format (awq: an AutoAWQ checkpoint, e.g. auto_awq.lua's --work-dir)" },
    ["group-size"] = { type = "int", help = "awq: the checkpoint's group size (checked against its config)" },
  },
})
if not opts.model_name or not opts.hf_dir then
  io.stderr:write("error: need MODEL_NAME and HF_DIR\n\n", args.usage({ usage = "tmrun convert.lua MODEL_NAME HF_DIR [options]" }))
  os.exit(2)
end

local h, err = convert.open_hf(opts.hf_dir)
if not h then
  io.stderr:write("error: ", err, "\n")
  os.exit(1)
end
if opts.model_format == "awq" and not h.awq then
  io.stderr:write("error: ", opts.hf_dir, "/config.json has no AWQ quantization_config (quant_method awq)\n")
  os.exit(1)
end
if h.awq and opts.dtype then
  io.stderr:write("error: --dtype does not apply to an AWQ checkpoint (its linears are int4, the rest fp16)\n")
  os.exit(1)
end
local cfg, werr = convert.write_workspace(h, opts.model_name, {
  tp = opts.tp, weight_type = opts.dtype, dst_path = opts.dst_path, session_len = opts.session_len,
  group_size = opts.group_size,
  progress = function(done, total) io.stderr:write(string.format("rank %d/%d written\n", done, total)) end,
})
if not cfg then
  io.stderr:write("error: ", werr, "\n")
  os.exit(1)
end
io.stderr:write(string.format("workspace %s: %s, %d layers, tp %d, weight_type %s\n", opts.dst_path, h.arch,
  cfg.num_layer, cfg.tensor_para_size, cfg.weight_type))
