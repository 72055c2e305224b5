"""The ECG models: the four channel models (:mod:`~robustlab.ecg.models.channels`) and the multi-resolution
representation that combines their embeddings with hand-crafted features (:mod:`~robustlab.ecg.models.mrr`,
Wang et al. 2020). Importing costs torch only."""

from robustlab.ecg.models.channels import (
    CHANNEL_MODELS,
    ECGCNN,
    ECGCNNLSTM,
    ChannelModel,
    ECGBiGRU,
    ECGResNet,
    build_channel_model,
)
from robustlab.ecg.models.mrr import MRRClassifier, MRRNet, channel_embeddings

__all__ = [
    "CHANNEL_MODELS",
    "ChannelModel",
    "ECGBiGRU",
    "ECGCNN",
    "ECGCNNLSTM",
    "ECGResNet",
    "MRRClassifier",
    "MRRNet",
    "build_channel_model",
    "channel_embeddings",
]
