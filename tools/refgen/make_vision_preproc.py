#!/usr/bin/env python3
"""Golden fixtures for fourcast's image preprocessing (src/media), from the reference stack.

Writes tests/fixtures/vision-preproc/:
  inputs/<name>.<ext>    encoded test images of awkward sizes and modes (made here, seeded)
  golden.safetensors     for every input and backend (tv = transformers' default torchvision
                         Gemma4ImageProcessor, pil = Gemma4ImageProcessorPil):
                           <name>.rgb        U8 [H, W, 3]  the RGB image the processor resizes: vLLM's
                                             ImageMediaIO(image_mode="RGB") conversion, then
                                             HF's convert_to_rgb (do_convert_rgb)
                           <name>.<b>.resized U8 [Hr, Wr, 3] the image after the processor's resize
                                             (patch_size 4, max_soft_tokens 70: the tiny models'
                                             processor, so every fixture stays small)
                           <name>.<b>.pv     F32 [630, 48]  pixel_values of that processor
                           <name>.<b>.pos    I32 [630, 2]   image_position_ids (PV_IMAGES only)
                           <name>.n          I32 [1]        num_soft_tokens_per_image
                         real-geometry resizes (patch 16) of two images at budgets 70 and 280:
                           real.<name>.<budget>.<b>.fnv1a I64 [1] FNV-1a 64 of the resized HWC
                                                            bytes (as a two's-complement int64)
                           real.<name>.<budget>.<b>.head   U8 [8, Wr, 3] its first 8 rows
                           real.<name>.<budget>.shape      I32 [2]
                         soft-token counts: counts I32 [N, 7] rows (H, W, budget, Hr, Wr, N_hf,
                         N_vllm) for >= 1000 random sizes at every budget (patch 16, pool 3)

vLLM's media load (vllm/multimodal/media/image.py ImageMediaIO._convert_image_mode, default
image_mode "RGB"): RGBA images are pasted on a white background with the alpha channel as the mask
(vllm/multimodal/image.py rgba_to_rgb); every other mode goes through PIL's convert("RGB"), which
drops alpha but keeps a tRNS / GIF transparency as info["transparency"] (a colour tuple once
converted), which HF's convert_to_rgb (transformers image_transforms.py) then composites onto
white: pixels of exactly that colour become white. EXIF orientation is not applied by vLLM or HF; `exif6.jpg` checks that fourcast's
default leaves it alone too, and `<name>.rgb_exif` is the ImageOps.exif_transpose result for the
opt-in.

Run with the pinned stack plus torchvision and pillow (tools/refgen/requirements.txt):
    /work/venvs/vision/bin/python tools/refgen/make_vision_preproc.py
"""
import io
import json
import math
import pathlib
import shutil
import sys

import numpy as np
import torch
from PIL import Image, ImageOps
from safetensors.torch import save_file

import transformers
from transformers.models.gemma4.image_processing_gemma4 import (
    Gemma4ImageProcessor,
    get_aspect_ratio_preserving_size,
)
from transformers.models.gemma4.image_processing_pil_gemma4 import Gemma4ImageProcessorPil
from transformers.image_transforms import convert_to_rgb

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "vision-preproc"
SEED = 20260614
BUDGETS = (70, 140, 280, 560, 1120)
PV_IMAGES = ("rgb_noise", "gray16")


def smooth(h, w, rng, channels):
    """Gradients plus a few sharp edges plus mild noise: resize-sensitive, PNG-friendly."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    out = []
    for c in range(channels):
        a, b, ph = rng.uniform(0.02, 0.3), rng.uniform(0.02, 0.3), rng.uniform(0, 6.28)
        v = 127 + 100 * np.sin(a * x + b * y + ph)
        v += np.where((x // max(1, w // 5) + y // max(1, h // 4)) % 2 == 0, 40, -40)
        v += rng.normal(0, 6, size=(h, w))
        out.append(v)
    return np.clip(np.stack(out, -1), 0, 255).astype(np.uint8)


def make_inputs(rng):
    """name -> (bytes, extension); every mode and format fourcast decodes."""
    imgs = {}

    def save(name, im, fmt, ext, **kw):
        buf = io.BytesIO()
        im.save(buf, fmt, **kw)
        imgs[name] = (buf.getvalue(), ext)

    save("rgb_noise", Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)), "PNG", "png")
    rgba = smooth(29, 61, rng, 4)
    rgba[..., 3] = np.linspace(0, 255, 61, dtype=np.uint8)[None, :]  # alpha ramp 0..255
    rgba[:5, :, 3] = 0
    save("rgba_alpha", Image.fromarray(rgba, "RGBA"), "PNG", "png")
    pal = Image.fromarray(smooth(20, 100, rng, 3)).quantize(colors=37, method=Image.Quantize.MEDIANCUT)
    save("palette_trns", pal, "PNG", "png", transparency=3)
    gray = Image.fromarray(smooth(517, 333, rng, 1)[..., 0], "L")
    save("gray", gray, "JPEG", "jpg", quality=85)
    cmyk = Image.fromarray(smooth(71, 45, rng, 4), "CMYK")
    save("cmyk", cmyk, "JPEG", "jpg", quality=90)
    save("photo_lossy", Image.fromarray(smooth(96, 128, rng, 3)), "WEBP", "webp", quality=80)
    wa = smooth(50, 50, rng, 4)
    wa[..., 3] = rng.integers(0, 256, (50, 50), dtype=np.uint8)
    save("alpha_lossless", Image.fromarray(wa, "RGBA"), "WEBP", "webp", lossless=True)
    f0 = Image.fromarray(smooth(400, 23, rng, 3)).quantize(colors=64)
    f1 = Image.fromarray(smooth(400, 23, rng, 3)).quantize(colors=64)
    buf = io.BytesIO()
    f0.save(buf, "GIF", save_all=True, append_images=[f1], duration=100, loop=0)
    imgs["anim"] = (buf.getvalue(), "gif")
    la = np.stack([smooth(9, 17, rng, 1)[..., 0], rng.integers(0, 256, (9, 17), dtype=np.uint8)], -1)
    save("la", Image.fromarray(la, "LA"), "PNG", "png")
    rgbt = smooth(33, 21, rng, 3)
    rgbt[5:15, 3:9] = (10, 200, 30)
    save("rgb_trns", Image.fromarray(rgbt), "PNG", "png", transparency=(10, 200, 30))
    gt = smooth(19, 27, rng, 1)[..., 0]
    gt[2:9, 2:20] = 77
    save("gray_trns", Image.fromarray(gt, "L"), "PNG", "png", transparency=77)
    gf = Image.fromarray(smooth(30, 40, rng, 3)).quantize(colors=16)
    buf = io.BytesIO()
    gf.save(buf, "GIF", transparency=2)
    imgs["gif_trns"] = (buf.getvalue(), "gif")
    pal2 = Image.fromarray(smooth(22, 31, rng, 3)).quantize(colors=20)
    save("palette_alpha", pal2, "PNG", "png", transparency=bytes([255, 128, 0, 40] + [255] * 16))
    save("one", Image.fromarray(np.array([[[200, 30, 90]]], dtype=np.uint8)), "PNG", "png")
    g16 = (np.arange(30 * 40).reshape(30, 40) * 37 % 1000).astype(np.uint16)
    save("gray16", Image.fromarray(g16), "PNG", "png")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to display
    save("exif6", Image.fromarray(smooth(48, 64, rng, 3)), "JPEG", "jpg", quality=92, exif=exif)
    save("progressive", Image.fromarray(smooth(150, 200, rng, 3)), "JPEG", "jpg", quality=75,
         progressive=True, subsampling=2)
    return imgs


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h - (1 << 64) if h >= (1 << 63) else h


def vllm_rgb(data):
    """vLLM's ImageMediaIO(image_mode="RGB").load_bytes (see the module docstring)."""
    im = Image.open(io.BytesIO(data))
    if im.mode == "RGB":
        return im
    if im.mode == "RGBA":
        out = Image.new("RGB", im.size, (255, 255, 255))
        out.paste(im, mask=im.split()[3])
        return out
    return im.convert("RGB")


def served_rgb(data):
    """What the HF processor resizes when vLLM serves the bytes (see the module docstring)."""
    return convert_to_rgb(vllm_rgb(data), return_numpy=True)


def vllm_num_soft_tokens(h, w, budget, patch=16, pool=3):
    """vLLM gemma4_mm.py _compute_num_soft_tokens (spec multimodal.md §2.2)."""
    max_patches = budget * pool * pool
    side = patch * pool
    scale = math.sqrt(max_patches / ((h / patch) * (w / patch)))
    hr = max(side, math.floor(h * scale / side) * side)
    wr = max(side, math.floor(w * scale / side) * side)
    return min((hr // patch) * (wr // patch) // (pool * pool), budget)


def main():
    torch.set_num_threads(1)
    rng = np.random.default_rng(SEED)
    if OUT.exists():
        shutil.rmtree(OUT)
    (OUT / "inputs").mkdir(parents=True)
    tensors = {}
    procs = {
        "tv": Gemma4ImageProcessor(patch_size=4, max_soft_tokens=70, pooling_kernel_size=3),
        "pil": Gemma4ImageProcessorPil(patch_size=4, max_soft_tokens=70, pooling_kernel_size=3),
    }
    manifest = {}
    for name, (data, ext) in make_inputs(rng).items():
        (OUT / "inputs" / f"{name}.{ext}").write_bytes(data)
        rgb = vllm_rgb(data)
        arr = served_rgb(data)
        tensors[f"{name}.rgb"] = torch.from_numpy(arr.copy())
        if name == "exif6":
            t = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
            tensors[f"{name}.rgb_exif"] = torch.from_numpy(np.array(t).copy())
        h, w = arr.shape[:2]
        hr, wr = get_aspect_ratio_preserving_size(h, w, 4, 630, 3)
        for b, proc in procs.items():
            out = proc(images=[rgb], return_tensors="pt")
            pv = out["pixel_values"][0]
            # The processor sees exactly `.rgb`: the same bytes as a plain RGB image agree.
            again = proc(images=[Image.fromarray(arr)], return_tensors="pt")["pixel_values"][0]
            assert torch.equal(again, pv), name
            if name in PV_IMAGES:  # the float tensors are derivable from .resized; two suffice
                tensors[f"{name}.{b}.pv"] = pv.float().contiguous()
                tensors[f"{name}.{b}.pos"] = out["image_position_ids"][0].to(torch.int32).contiguous()
            n = int(out["num_soft_tokens_per_image"][0])
            tensors[f"{name}.n"] = torch.tensor([n], dtype=torch.int32)
            # Undo the patchify and the rescale: every value is an exact k/255 in fp32.
            real = pv[: (hr // 4) * (wr // 4)].reshape(hr // 4, wr // 4, 4, 4, 3)
            img = real.permute(0, 2, 1, 3, 4).reshape(hr, wr, 3)
            u8 = torch.round(img * 255).to(torch.uint8)
            # tv rescales in fp32 (u8 * fl32(1/255)); pil in float64, then casts to fp32.
            back = u8.float() * (1 / 255) if b == "tv" else (u8.double() * (1 / 255)).float()
            assert torch.equal(back, img), (name, b)
            tensors[f"{name}.{b}.resized"] = u8.contiguous()
        manifest[name] = {"file": f"inputs/{name}.{ext}", "mode": Image.open(io.BytesIO(data)).mode,
                          "size_hw": [h, w], "resized_hw": [hr, wr], "soft_tokens": n}

    # Real geometry (patch 16): hashes and the first rows of the resized image.
    real_procs = {}
    for budget in (70, 280):
        real_procs[budget] = {
            "tv": Gemma4ImageProcessor(max_soft_tokens=budget),
            "pil": Gemma4ImageProcessorPil(max_soft_tokens=budget),
        }
    for name in ("gray", "progressive"):
        data, _ = make_inputs(np.random.default_rng(SEED))[name]
        rgb = vllm_rgb(data)
        h, w = rgb.size[1], rgb.size[0]
        assert rgb.mode == "RGB" and "transparency" not in rgb.info
        for budget, bp in real_procs.items():
            hr, wr = get_aspect_ratio_preserving_size(h, w, 16, budget * 9, 3)
            tensors[f"real.{name}.{budget}.shape"] = torch.tensor([hr, wr], dtype=torch.int32)
            for b, proc in bp.items():
                pv = proc(images=[rgb], return_tensors="pt")["pixel_values"][0]
                real = pv[: (hr // 16) * (wr // 16)].reshape(hr // 16, wr // 16, 16, 16, 3)
                img = real.permute(0, 2, 1, 3, 4).reshape(hr, wr, 3)
                u8 = torch.round(img * 255).to(torch.uint8).contiguous()
                tensors[f"real.{name}.{budget}.{b}.fnv1a"] = torch.tensor(
                    [fnv1a64(u8.numpy().tobytes())], dtype=torch.int64)
                tensors[f"real.{name}.{budget}.{b}.head"] = u8[:8].contiguous()

    # Soft-token counts: log-uniform sizes 1..20000 per side, plus edge cases.
    sizes = [(1, 1), (3, 900), (900, 3), (480, 640), (1080, 1920), (10, 4000), (2785, 34),
             (20000, 1), (1, 20000), (48, 48), (47, 49), (768, 768), (336, 432)]
    while len(sizes) < 1200:
        h = int(math.exp(rng.uniform(0, math.log(20000))))
        w = int(math.exp(rng.uniform(0, math.log(20000))))
        sizes.append((max(1, h), max(1, w)))
    rows = []
    for h, w in sizes:
        for budget in BUDGETS:
            hr, wr = get_aspect_ratio_preserving_size(h, w, 16, budget * 9, 3)
            n = (hr // 16) * (wr // 16) // 9
            rows.append([h, w, budget, hr, wr, n, vllm_num_soft_tokens(h, w, budget)])
    tensors["counts"] = torch.tensor(rows, dtype=torch.int32)

    meta = {"generator": "tools/refgen/make_vision_preproc.py", "transformers": transformers.__version__,
            "torch": torch.__version__, "torchvision": __import__("torchvision").__version__,
            "pillow": Image.__version__, "seed": str(SEED), "manifest": json.dumps(manifest, sort_keys=True)}
    path = OUT / "golden.safetensors"
    save_file(tensors, str(path), metadata=meta)
    # Deterministic header order (as make_fixtures.py does).
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    body = raw[8 + n :]
    hdr = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    hdr += b" " * ((8 - len(hdr) % 8) % 8)
    path.write_bytes(len(hdr).to_bytes(8, "little") + hdr + body)
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    mism = sum(1 for r in rows if r[5] != r[6])
    print(f"wrote {OUT} ({total / 1024:.0f} KiB), {len(rows)} count rows, HF/vLLM count mismatches: {mism}")
    for k, v in manifest.items():
        print(f"  {k}: {v}")
    assert total < 3 * 1024 * 1024


if __name__ == "__main__":
    sys.exit(main())
