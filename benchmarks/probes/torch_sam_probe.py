import time, json, os, torch, torchvision
torch.backends.cudnn.benchmark = True
dev = "cuda"
out = {"torch": torch.__version__, "torchvision": torchvision.__version__, "gpu": torch.cuda.get_device_name()}
def model_():
    m = torchvision.models.resnet18(num_classes=10)
    m.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False); m.maxpool = torch.nn.Identity()
    return m.to(dev).to(memory_format=torch.channels_last)
for bs in (128, 256):
    for sam in (False, True):
        m = model_(); opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        x = torch.randn(bs, 3, 32, 32, device=dev).to(memory_format=torch.channels_last); y = torch.arange(bs, device=dev) % 10
        lossf = torch.nn.CrossEntropyLoss()
        def step():
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = lossf(m(x), y)
            loss.backward()
            if sam:
                ps = [p for p in m.parameters() if p.grad is not None]
                with torch.no_grad():
                    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in ps]))
                    es = [p.grad * (0.05 / (norm + 1e-12)) for p in ps]
                    for p, e in zip(ps, es): p.add_(e)
                opt.zero_grad(set_to_none=True)
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    lossf(m(x), y).backward()
                with torch.no_grad():
                    for p, e in zip(ps, es): p.sub_(e)
            opt.step(); opt.zero_grad(set_to_none=True)
        for _ in range(10): step()
        torch.cuda.synchronize(); n = 50; t = time.perf_counter()
        for _ in range(n): step()
        torch.cuda.synchronize(); dt = (time.perf_counter() - t) / n
        key = f"{'sam' if sam else 'erm'}_bs{bs}"
        out[key] = dict(step_ms=dt * 1e3, img_s=bs / dt)
        print("torch", key, f"{dt*1e3:.2f} ms/step {bs/dt:.0f} img/s", flush=True)
json.dump(out, open(os.environ.get("OUT", "/tmp") + "/torch_probe.json", "w"), indent=1)
