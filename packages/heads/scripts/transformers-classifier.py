"""Sequence-classification logits from transformers (and PEFT), for the checks of @peft/heads.

    python transformers-classifier.py JOBS.json

JOBS.json is a list of jobs, each with "inputIds" and "attentionMask" (right padding) and either
  "merged": a folder written by saveMerged, loaded with AutoModelForSequenceClassification alone, or
  "base" and "adapter": the base folder loaded as that class with the class names that the
  adapter's adapter_config.json records (id2label) and "padTokenId" as pad_token_id, and the
  adapter on it with PEFT's PeftModel.from_pretrained.
Prints a JSON list, one object per job: the class transformers built, num_labels, id2label,
label2id, pad_token_id and the logits (float32, [batch][num_labels]).
"""

import json
import os
import sys
import warnings

import torch
from transformers import AutoModelForSequenceClassification
from transformers.utils import logging


def run(job: dict) -> dict:
    if "merged" in job:
        model = AutoModelForSequenceClassification.from_pretrained(job["merged"], dtype=torch.float32)
        base = model
    else:
        from peft import PeftModel

        with open(os.path.join(job["adapter"], "adapter_config.json")) as f:
            id2label = {int(k): v for k, v in json.load(f)["id2label"].items()}
        base = AutoModelForSequenceClassification.from_pretrained(
            job["base"], dtype=torch.float32, id2label=id2label, pad_token_id=job["padTokenId"]
        )
        model = PeftModel.from_pretrained(base, job["adapter"])
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=torch.tensor(job["inputIds"]), attention_mask=torch.tensor(job["attentionMask"])).logits
    config = base.config
    return {
        "class": type(base).__name__,
        "num_labels": config.num_labels,
        "id2label": {str(k): v for k, v in config.id2label.items()},
        "label2id": config.label2id,
        "pad_token_id": config.pad_token_id,
        "logits": logits.float().tolist(),
    }


def main() -> None:
    logging.set_verbosity_error()
    warnings.simplefilter("ignore")
    with open(sys.argv[1]) as f:
        jobs = json.load(f)
    print(json.dumps([run(job) for job in jobs]))


if __name__ == "__main__":
    main()
