import pytest



@pytest.fixture(scope="session")
def small_model_config():
    """A small input size keeps torch tests quick; the architecture is the real TinyViT-5M."""
    from dp_pose_zoo.training.model import ModelConfig

    return ModelConfig(input_size=(128, 96))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A checkpoint trained for one epoch at 64x64: real files, cheap to make."""
    from dp_pose_zoo.training.config import Recipe
    from dp_pose_zoo.training.trainer import train

    recipe = Recipe.from_dict(dict(name="tiny", train_data="synthpose:private-train:16", val_data=None,
                                   strategy="scratch", epochs=1, batch_size=8, seed=0,
                                   model={"input_size": [64, 64], "norm": "group-norm"}))
    return train(recipe, tmp_path_factory.mktemp("ckpt") / "tiny", progress_bar=False)
