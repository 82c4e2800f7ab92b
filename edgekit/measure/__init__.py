"""The measure stage: what an artifact costs and where its time goes.

    profile.py  per-kernel latency, FLOPs, MACs, bytes and roofline of an artifact
    bench.py    an artifact against ONNX Runtime, interleaved, same threads
    flops.py    analytic FLOPs of an ONNX graph
"""

from edgekit.measure.profile import LayerProfile, ProfileReport, ProfileTotals, profile_artifact

__all__ = ["LayerProfile", "ProfileReport", "ProfileTotals", "profile_artifact"]
