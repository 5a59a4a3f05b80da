"""Video fixtures for tests/unit/media/video_test.cpp (tests/fixtures/video/golden.safetensors).

For each committed clip (tests/fixtures/video/make_clips.sh):
  - the metadata vLLM's default loader reads (nb_frames, else round(duration * fps), as OpenCV's
    CAP_PROP_FRAME_COUNT does; fps; duration), from ffprobe;
  - the frame indices vLLM samples (VideoBackend.compute_frames_index_to_sample with
    VideoMediaIO's num_frames=32, written out with numpy as vLLM does);
  - the sampled frames decoded by the ffmpeg CLI to rgb24 (an independent reader of the same
    libraries: frame i = the i-th decoded frame), as checksums and the first two frames in full;
  - what vLLM's gemma4_mm.py makes of those frames: each one through transformers' Gemma 4
    *image* processor (torchvision backend) with max_soft_tokens=70 — soft tokens per frame, a
    checksum of every frame's pixel values (real patches only), the positions;
  - transformers' Gemma4VideoProcessor on the same frames (do_sample_frames=False): the same
    resize, but its fused rescale-and-normalize divides by 255 in fp32 where the image processor
    multiplies by fl32(1/255) — one ulp apart in about a third of the values; its checksums too;
  - the timestamps from transformers' VideoMetadata.timestamps and HF's "mm:ss" strings.
Plus frame-index sampling cases: vLLM's rule (numpy linspace) and transformers'
default_sample_indices_fn, over a grid of frame counts, durations, num_frames and fps.

Run with the refgen stack plus torchvision (tools/refgen/requirements.txt) and Debian's ffmpeg:
    python tools/refgen/make_video_fixtures.py
"""
import json
import subprocess
from pathlib import Path

import numpy as np
import torch
import transformers
from safetensors.torch import save_file
from PIL import Image
from transformers.models.gemma4.image_processing_gemma4 import Gemma4ImageProcessor
from transformers.models.gemma4.video_processing_gemma4 import Gemma4VideoProcessor
from transformers.video_utils import VideoMetadata, default_sample_indices_fn

ROOT = Path(__file__).resolve().parents[2]
DIR = ROOT / "tests" / "fixtures" / "video"
CLIPS = ["h264_25fps_3s.mp4", "vp9_10fps_2s.webm", "mjpeg_5fps_2s.avi", "h264_1fps_70s.mp4"]


def checksum(a):
    """Σ (i + 1)·(2654435761) · word_i mod 2^64 over the 32-bit (or 8-bit) words of an array."""
    a = np.ascontiguousarray(a)
    w = a.view(np.uint32) if a.dtype.itemsize == 4 else a.view(np.uint8)
    w = w.reshape(-1).astype(np.uint64)
    i = np.arange(1, w.size + 1, dtype=np.uint64)
    weights = (i * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)
    s = int(np.sum(w * weights, dtype=np.uint64))
    return s - (1 << 64) if s >= (1 << 63) else s


def vllm_indices(total, duration, num_frames, fps):
    n = total
    if num_frames > 0:
        n = min(num_frames, total)
    if fps > 0:
        n = min(n, int(np.floor(duration * fps)))
    n = max(1, n)
    if n == total:
        return list(range(n))
    return np.linspace(0, total - 1, n, dtype=int).tolist()


def probe(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "stream=codec_name,width,height,nb_frames,avg_frame_rate,r_frame_rate,"
                          "duration:format=duration,format_name", "-of", "json", str(path)],
                         check=True, capture_output=True, text=True).stdout
    j = json.loads(out)
    s, f = j["streams"][0], j["format"]
    num, den = (int(x) for x in s["avg_frame_rate"].split("/"))
    fps = num / den if den else 0.0
    duration = float(f.get("duration", 0) or 0)
    nb = int(s.get("nb_frames", 0) or 0)
    total = nb if nb > 0 else int(np.floor(duration * fps + 0.5))
    return dict(codec=s["codec_name"], width=int(s["width"]), height=int(s["height"]), fps=fps,
                duration=duration, total_frames=total)


def ffmpeg_frames(path, w, h):
    raw = subprocess.run(["ffmpeg", "-v", "error", "-threads", "1", "-i", str(path),
                          "-fps_mode", "passthrough", "-sws_flags", "bicubic", "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], check=True, capture_output=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)


def mmss(s):
    return f"{int(s // 60):02d}:{int(s % 60):02d}"


def main():
    proc = Gemma4VideoProcessor()
    image_proc = Gemma4ImageProcessor()
    tensors, clips = {}, []
    for name in CLIPS:
        meta = probe(DIR / name)
        frames_all = ffmpeg_frames(DIR / name, meta["width"], meta["height"])
        idx = vllm_indices(meta["total_frames"], meta["duration"], 32, -1)
        idx = [i for i in idx if i < len(frames_all)]  # vLLM skips frames it cannot grab
        frames = frames_all[idx]
        md = VideoMetadata(total_num_frames=meta["total_frames"], fps=meta["fps"],
                           duration=meta["duration"], frames_indices=idx)
        out = proc(videos=[frames], video_metadata=[md], do_sample_frames=False,
                   return_tensors="pt", return_metadata=True)
        hf_pv = out["pixel_values_videos"]
        img = image_proc(images=[Image.fromarray(f) for f in frames], max_soft_tokens=70,
                         return_tensors="pt")
        pv, pos = img["pixel_values"], img["image_position_ids"]
        n_soft = int(img["num_soft_tokens_per_image"][0])
        assert n_soft == int(out["num_soft_tokens_per_video"][0])
        real = int((pos[0, :, 0] >= 0).sum())
        assert torch.equal(pos, out["video_position_ids"])
        key = name.split(".")[0]
        tensors[f"{key}.frame0"] = torch.from_numpy(frames[0].copy())
        tensors[f"{key}.frame1"] = torch.from_numpy(frames[1].copy())
        tensors[f"{key}.positions0"] = pos[0, :real].to(torch.int32).contiguous()
        stamps = md.timestamps
        clips.append(dict(
            file=name, **meta, decoded_frames=len(frames_all), indices=idx,
            timestamps=stamps, mmss=[mmss(t) for t in stamps],
            frame_checksums=[checksum(f) for f in frames],
            soft_tokens_per_frame=n_soft, real_patches=real,
            pixel_checksums=[checksum(pv[i, :real].numpy()) for i in range(pv.shape[0])],
            hf_video_pixel_checksums=[checksum(hf_pv[i, :real].numpy())
                                      for i in range(hf_pv.shape[0])]))
    cases = []
    for total in [1, 2, 5, 31, 32, 33, 64, 75, 97, 100, 1000, 4321, 86400]:
        for num_frames in [-1, 1, 2, 8, 32, 64]:
            for fps in [-1, 0.5, 1, 2.5]:
                duration = total / 24.0
                if num_frames == -1 and total > 5000 and fps <= 0:
                    continue  # every frame of a long clip: not an interesting list
                c = dict(total=total, duration=duration, num_frames=num_frames, fps=fps,
                         vllm=vllm_indices(total, duration, num_frames, fps))
                if num_frames > 0:
                    md = VideoMetadata(total_num_frames=total, fps=24.0, duration=duration)
                    try:
                        c["hf"] = default_sample_indices_fn(md, num_frames=num_frames).tolist()
                    except ValueError as e:
                        c["hf_error"] = str(e)
                cases.append(c)
    manifest = dict(transformers=transformers.__version__, torch=torch.__version__,
                    numpy=np.__version__, clips=clips, sampling=cases,
                    mmss_cases=[[t, mmss(t)] for t in
                                [0, 0.04, 59.999, 60, 61.5, 599.9, 3599.5, 3600, 6000.25]])
    save_file(tensors, str(DIR / "golden.safetensors"),
              metadata={"manifest": json.dumps(manifest)})
    print("wrote", DIR / "golden.safetensors", {c["file"]: (c["total_frames"], len(c["indices"]),
                                                           c["soft_tokens_per_frame"]) for c in clips})


if __name__ == "__main__":
    main()
