"""English words a Chinese page may show: names, units, flags and terms Chinese inference
engineers write in English (token, prefill, decode, KV, TP, ...). Shared by tests/test_i18n.py
and tests/browser/test_i18n_page.py; model and GPU names come from presets/*.json there."""

TERMS = {
    # units and notation
    "token", "tokens", "Token", "GiB", "GB", "MB", "kB", "B", "s", "ms", "TFLOPS", "MFU",
    # terms kept in English in Chinese engineering writing
    "KV", "GPU", "GPUs", "CPU", "SHARDS", "sqrt", "ln", "sigma", "CV", "mod", "K", "TP", "TTFT", "prefill", "decode", "LRU", "FIFO", "TTL", "LFU", "MLA", "MoE",
    "MXFP4", "FP8", "CUDA", "Che", "refined", "seed", "auto", "fp4", "fp8", "fp16", "bf16", "int8",
    # trace fields and formulas (names stay as written in the file)
    "UTF-8", "block_size", "block_size_tokens", "ceil", "chat_id", "gap_mean_s", "input_length", "len", "max_bytes",
    "max_lines", "parent_chat_id", "service_time_s", "session_id", "user_tokens_per_turn",
    # product and file names, flags
    "kvcalc", "vLLM", "SGLang", "Python", "Pyodide", "numpy", "Web", "Worker", "Hugging", "Face",
    "config", "json", "JSON", "block", "size", "gpu", "memory", "utilization", "tensor_parallel",
    "gpu_memory_utilization", "runtime", "local", "cdn", "context_tokens", "max_position_embeddings",
    "presets", "English", "CDN", "zh", "CN", "en", "zh-CN", "URL",
    "jsonl", "gz", "hash_ids", "gzip", "Mooncake", "Bailian", "FAST", "Apache", "License", "README", "md", "data", "traces",
    # export formats and workload names (issue 9: export, scenarios)
    "CSV", "PNG", "SVG", "RAG", "cache_hit_rate", "min", "how", "html",   # how.zh-CN.html: a link target
    # fleet (issue 7): hardware and products named as engineers write them
    "CPU", "SSD", "NVMe", "PCIe", "LMCache", "HiCache", "Store",
    "mooncake", "kvcache-ai", "HTTP", "JSON-lines", "ID", "trace", "FILE", "m", "python", "lm_head", "SGLang", "mem-fraction-static", "p50", "p90", "p99", "MiB", "KiB",
    # models typed by hand, by Hugging Face id, weight formats, engine logs (issue 8): architecture
    # names and config.json field names as they are written in the file
    "CPU", "MHA", "GQA", "MQA", "RoPE", "MLP", "embedding", "Gated", "DeltaNet", "global", "linear", "AWQ", "GPTQ",
    "W8A8", "NVFP4", "graph", "quantization_config", "torch_dtype", "multi_query", "multi_query_group_num", "true",
    "head_dim", "hidden_size", "kv_lora_rank", "qk_rope_head_dim", "num_attention_heads", "num_key_value_heads",
    "num_hidden_layers", "vocab_size", "sliding_window", "ChatGLM", "DeepSeek", "DeepSeek-V3", "Gemma", "Qwen",
    "Qwen3-8B", "Qwen3-Next", "Hub", "huggingface", "gated", "owner", "name", "transformers", "INFO", "Available",
    "cache",
    # the How it works pages (scripts/gen_how.py): a formula's symbol, the licence, the files it is made from
    "LLM", "h_s", "Apache-2", "scripts", "gen_how", "validation", "model_vs_sim",
}
