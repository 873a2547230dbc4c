"""Analyzer settings: which backend, how many at once, what counts as stale."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from analyzer.detect.coco import CCTV_LABELS, COCO_LABELS


class CpuBackendSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    detector: Literal["nanodet", "hog", "none"] = Field(
        "nanodet", description="nanodet: COCO objects (people, vehicles, animals ...) from the model `vigil setup-detector` "
                               "installs, OpenCV's HOG people detector while it is missing; hog: HOG only; none: no detector")
    model_path: str = Field("", description="an ONNX file of the object model; empty: the one `vigil setup-detector` cached")
    score_threshold: float = Field(0.4, ge=0.05, le=0.99, description="object model: score a detection must reach")
    labels: list[str] = Field(default_factory=lambda: list(CCTV_LABELS),
                              description="object model: COCO labels to report; default: people, vehicles, animals and "
                                          "carried bags (indoor classes fire on CCTV clutter); [all]: all 80")
    threads: int = Field(0, ge=0, le=256, description="detector worker threads; 0: every core this process may use")
    frames: int = Field(3, ge=1, le=6, description="frames per packet the detectors look at: the CPU budget per packet "
                                                   "(~60-110 ms per frame for the object model on one core)")
    moving_objects: bool = Field(True, description="count motion boxes no detection explains as 'moving object' (cars "
                                                   "seen from straight above, which COCO models do not recognise)")
    people: bool = Field(True, description="OpenCV HOG people detector (detector: hog, or while the model is missing)")
    faces: bool = Field(False, description="OpenCV Haar frontal-face cascade (label 'face')")
    cascades: dict[str, str] = Field(
        default_factory=dict,
        description="more Haar cascades: label -> cascade file name in cv2.data.haarcascades (or a path), "
                    "e.g. {car: haarcascade_car.xml}",
    )
    ocr: bool = Field(False, description="read text with rapidocr (the 'ocr' extra); label 'text'")
    upscale_to: int = Field(800, ge=256, le=1920, description="HOG: frames are enlarged to this width (people >= 128 px tall)")
    hit_threshold: float = Field(0.3, description="HOG SVM margin a detection must exceed")

    @field_validator("labels")
    @classmethod
    def _coco(cls, labels: list[str]) -> list[str]:
        unknown = sorted(set(labels) - set(COCO_LABELS) - {"all"})
        if unknown:
            raise ValueError(f"not COCO labels: {unknown} (use COCO names such as 'person', 'traffic light', or [all])")
        return labels


class ThinkingSettings(BaseModel):
    """Escalation for PromptRules with `think: true` (DESIGN §4 fast mode first)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="re-ask with enable_thinking=True for rules marked think")
    uncertain_below: float = Field(0.6, ge=0, le=1, description="a fast verdict less confident than this is re-asked")
    max_new_tokens: int = Field(2048, ge=64, le=16384, description="thinking answers are long")


class OpenAISettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str = Field("http://127.0.0.1:8000/v1", description="any OpenAI-compatible server (vLLM, SGLang, ...)")
    model: str = "openbmb/MiniCPM-V-4_5"
    api_key_env: str = Field("OPENAI_API_KEY", description="environment variable holding the key (never the key itself)")
    timeout_s: float = Field(30.0, gt=0)
    connect_timeout_s: float = Field(5.0, gt=0)
    max_retries: int = Field(2, ge=0, le=10)
    backoff_s: float = Field(0.5, ge=0, le=60, description="first retry delay; doubles each try, with jitter")
    max_backoff_s: float = Field(10.0, ge=0, le=300, description="cap on one retry delay (Retry-After included)")
    concurrency: int = Field(8, ge=1, le=256, description="requests in flight per server")
    breaker_failures: int = Field(5, ge=1, le=1000, description="consecutive failed tries that open the circuit")
    breaker_reset_s: float = Field(15.0, gt=0, description="an open circuit lets one probe through after this long")
    model_size: int = Field(448, ge=64, le=1344, description="frames are sent at the model processor's size for "
                            "this side (bus/frame_size.py: ~448x448 of area, 16:9 -> 602x336); larger frames are shrunk, "
                            "none enlarged")
    max_tokens: int = Field(512, ge=16, le=16384)
    tokens_per_frame: int = Field(64, ge=1, le=4096, description="for the visual-tokens metric: vLLM does not pack frames")


class MiniCPMSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_id: str = Field("openbmb/MiniCPM-V-4_5", description="or openbmb/MiniCPM-V-4_5-int4 / -AWQ, or a local path")
    device: str = Field("cuda", description="cuda, cuda:1, cpu (slow), mps")
    dtype: Literal["bfloat16", "float16", "float32"] = Field(
        "bfloat16", description="bfloat16 on GPUs; float32 for device cpu (CPUs are slow at half precision)")
    attn_implementation: Literal["sdpa", "flash_attention_2"] = "sdpa"
    max_batch: int = Field(4, ge=1, le=32, description="packets batched into one chat() call (every packet still "
                                                      "gets its own 64 visual tokens)")
    max_new_tokens: int = Field(512, ge=16, le=4096)
    sampling: bool = Field(False, description="false: greedy decoding, the same packet gets the same verdict; true: "
                                              "the model card's sampling (temperature 0.7, top_p 0.8, top_k 100)")
    repetition_penalty: float = Field(1.0, ge=1.0, le=2.0, description="greedy decoding only; 1.0 = none (JSON "
                                                                       "answers repeat quotes and braces by nature)")


class AnalyzerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: Literal["cpu", "minicpm", "openai"] = "cpu"
    concurrency: int = Field(2, ge=1, le=64, description="cpu backend: packets analysed at once per worker")
    prefetch: int = Field(32, ge=1, le=1024, description="packets a worker reads ahead and holds (kept alive); "
                                                         "freshness and fairness choose within this window")
    newest_first: bool = Field(True, description="per camera, newest waiting packet first (live); false: oldest first")
    stale_after_s: float = Field(30.0, gt=0, description="packets older than this are skipped, counted, logged")
    visibility_timeout_s: float = Field(60.0, gt=1, description="a packet whose worker stopped renewing it this long is reclaimed (XAUTOCLAIM)")
    metrics_interval_s: float = Field(2.0, gt=0, le=60, description="how often the JSON metrics snapshot is written to Redis")
    thinking: ThinkingSettings = ThinkingSettings()
    cpu: CpuBackendSettings = CpuBackendSettings()
    openai: OpenAISettings = OpenAISettings()
    minicpm: MiniCPMSettings = MiniCPMSettings()

