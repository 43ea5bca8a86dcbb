"""CLIP4Clip's symmetric InfoNCE, with several positives per row and column."""
import torch


def symmetric_info_nce(text: torch.Tensor, video: torch.Tensor, positives: torch.Tensor,
                       logit_scale: torch.Tensor) -> torch.Tensor:
    """Mean of the text->video and video->text losses over a batch.

    `text` (B x D) and `video` (V x D) are L2-normalised; `positives[i, j]` says caption i describes
    video j (a video with several captions, a caption shared by several videos: all count). Each
    row's loss is -log(sum of its positives' softmax mass); `logit_scale` is the learnable log of
    the inverse temperature, capped at 100 as in CLIP.
    """
    logits = logit_scale.clamp(max=4.6052).exp() * text @ video.T
    positives = positives.to(torch.bool)
    masked = logits.masked_fill(~positives, float('-inf'))
    text_to_video = torch.logsumexp(logits, dim=1) - torch.logsumexp(masked, dim=1)
    video_to_text = torch.logsumexp(logits, dim=0) - torch.logsumexp(masked, dim=0)
    return (text_to_video.mean() + video_to_text.mean()) / 2
