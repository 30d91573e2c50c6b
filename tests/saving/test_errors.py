"""Wrong, corrupted and unsafe files, unknown and custom objects: clear errors, and a failed load changes nothing."""
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import cuflow
from cuflow import keras
from cuflow.saving import h5io

layers = keras.layers


def small(name=None):
    return keras.Sequential([layers.Dense(3, input_shape=(2,), name=name), layers.Dense(1)])


def saved_config(tmp_path):
    path = tmp_path / "m.keras"
    small().save(path)
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def write_zip(path, members):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def with_layer(tmp_path, entry):
    """A .keras file whose model config has ``entry`` as its last layer."""
    members = saved_config(tmp_path)
    config = json.loads(members["config.json"])
    config["config"]["layers"].append(entry)
    members["config.json"] = json.dumps(config)
    return write_zip(tmp_path / "edited.keras", members)


def test_suffixes_are_checked_like_keras_3(tmp_path):
    model = small()
    with pytest.raises(ValueError, match=r"must end in `\.weights\.h5`. Received: filepath=.*w\.h5"):
        model.save_weights(tmp_path / "w.h5")
    with pytest.raises(ValueError, match=r"Invalid filepath extension.*Received: filepath=.*my_model"):
        model.save(tmp_path / "my_model")
    with pytest.raises(ValueError, match="File not found: filepath="):
        keras.models.load_model(tmp_path / "missing.keras")
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(ValueError, match="File format not supported"):
        keras.models.load_model(tmp_path / "m.txt")
    with pytest.raises(ValueError, match="not supported: .*bogus"):
        model.save(tmp_path / "m.keras", bogus=1)
    model.save(tmp_path / "m.keras")
    with pytest.raises(FileExistsError, match="overwrite=False"):
        model.save(tmp_path / "m.keras", overwrite=False)


def test_unbuilt_models_are_refused_for_weights(tmp_path):
    model = keras.Sequential([layers.Dense(2)])
    with pytest.raises(ValueError, match="not yet been built"):
        model.save_weights(tmp_path / "w.weights.h5")
    small().save_weights(tmp_path / "w.weights.h5")
    with pytest.raises(ValueError, match="not yet been built"):
        model.load_weights(tmp_path / "w.weights.h5")


def test_corrupted_files_give_clear_errors(tmp_path):
    (tmp_path / "junk.keras").write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="junk.keras is not a valid .keras file: it is not a zip archive"):
        keras.models.load_model(tmp_path / "junk.keras")
    members = saved_config(tmp_path)
    no_config = write_zip(tmp_path / "noconfig.keras", {k: v for k, v in members.items() if k != "config.json"})
    with pytest.raises(ValueError, match="has no config.json"):
        keras.models.load_model(no_config)
    bad_json = write_zip(tmp_path / "badjson.keras", {**members, "config.json": "{oops"})
    with pytest.raises(ValueError, match="config.json is not valid JSON"):
        keras.models.load_model(bad_json)
    bad_weights = write_zip(tmp_path / "badweights.keras", {**members, "model.weights.h5": b"garbage"})
    with pytest.raises(ValueError, match="model.weights.h5 is not a readable HDF5 file"):
        keras.models.load_model(bad_weights)
    (tmp_path / "junk.h5").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="junk.h5 is not a readable HDF5 file"):
        keras.models.load_model(tmp_path / "junk.h5")
    small().save_weights(tmp_path / "only.weights.h5")
    (tmp_path / "only.h5").write_bytes((tmp_path / "only.weights.h5").read_bytes())
    with pytest.raises(ValueError, match="No model config found.*load_weights"):
        keras.models.load_model(tmp_path / "only.h5")


def test_weight_mismatch_names_layer_and_shapes_and_changes_nothing(tmp_path):
    keras.Sequential([layers.Dense(3, input_shape=(2,)), layers.Dense(4)]).save_weights(tmp_path / "w.weights.h5")
    model = small()
    before = [w.numpy().copy() for w in model.weights]
    with pytest.raises(ValueError, match=r"Layer '.*': weight .*kernel:0 has shape \(3, 1\), but .* has shape "
                                         r"\(3, 4\) at 'layers/dense_1/vars/0'"):
        model.load_weights(tmp_path / "w.weights.h5")
    for w, old in zip(model.weights, before):
        np.testing.assert_array_equal(w.numpy(), old)
    with pytest.warns(UserWarning, match="Skipping loading weights"):
        model.load_weights(tmp_path / "w.weights.h5", skip_mismatch=True)
    keras.Sequential([layers.Dense(3, input_shape=(2,))]).save(tmp_path / "one.h5")
    with pytest.raises(ValueError, match=r"Layer count mismatch .*the model has 2 layers.*the file has 1"):
        model.load_weights(tmp_path / "one.h5")


def test_unknown_classes_name_the_class_and_suggest_custom_objects(tmp_path):
    path = with_layer(tmp_path, {"module": "my_project.layers", "class_name": "Fancy", "registered_name": None,
                                 "config": {"name": "fancy"}})
    with pytest.raises(ValueError, match=r"Unknown layer class 'Fancy'.*custom_objects"):
        keras.models.load_model(path)


def test_code_in_a_file_is_never_run(tmp_path):
    lambda_layer = {"module": "keras.layers", "class_name": "Lambda", "registered_name": None,
                    "config": {"name": "lam", "function": {"class_name": "__lambda__", "config": {"value": "abc"}}}}
    with pytest.raises(ValueError, match="Lambda layer: it holds Python bytecode"):
        keras.models.load_model(with_layer(tmp_path, lambda_layer))
    activation = {"module": "keras.layers", "class_name": "Activation", "registered_name": None,
                  "config": {"name": "act", "activation": {"class_name": "__lambda__", "config": {"value": "abc"}}}}
    with pytest.raises(ValueError, match="lambda.*never runs"):
        keras.models.load_model(with_layer(tmp_path, activation), safe_mode=False)
    imported = {"module": "os", "class_name": "function", "config": "system", "registered_name": None}
    with pytest.raises(ValueError, match="Unknown function 'system'"):
        keras.saving.deserialize_keras_object(imported)
    with pytest.raises(ValueError, match="Cannot save a lambda"):
        keras.Sequential([layers.Dense(1, input_shape=(2,), activation=lambda x: x)]).save(tmp_path / "l.keras")


def test_unsupported_options_are_named(tmp_path):
    grouped = {"module": "keras.layers", "class_name": "Conv2D", "registered_name": None,
               "config": {"name": "c", "filters": 2, "kernel_size": [1, 1], "groups": 2}}
    with pytest.raises(ValueError, match="option groups=2 is not supported by cuflow's Conv2D"):
        keras.saving.deserialize_keras_object(grouped)


def test_custom_objects_registered_or_passed(tmp_path):
    @keras.saving.register_keras_serializable(package="tests")
    def doubled(x):
        return x * 2.0

    class Scale(layers.Layer):
        def __init__(self, factor=1.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def build(self, input_shape):
            self.scale = self.add_weight("scale", (input_shape[-1],), initializer="ones")

        def call(self, inputs):
            return inputs * self.scale * self.factor

        def get_config(self):
            return {**super().get_config(), "factor": self.factor}

    model = keras.Sequential([layers.Dense(2, input_shape=(3,), activation=doubled), Scale(3.0)])
    model.layers[1].scale.assign([1.0, -1.0])
    model.save(tmp_path / "c.keras")
    model.save(tmp_path / "c.h5")
    x = np.ones((1, 3), "float32")
    for name in ("c.keras", "c.h5"):
        with pytest.raises(ValueError, match="Unknown layer class 'Scale'.*custom_objects"):
            keras.models.load_model(tmp_path / name)
        restored = keras.models.load_model(tmp_path / name, custom_objects={"Scale": Scale})
        assert restored.layers[0].activation is doubled and restored.layers[1].factor == 3.0
        np.testing.assert_array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))
    with keras.saving.custom_object_scope({"Scale": Scale}):
        assert isinstance(keras.models.load_model(tmp_path / "c.keras").layers[1], Scale)


def test_h5py_is_optional(monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match=r"pip install cuflow\[saving\]"):
        h5io.require_h5py()
    done = subprocess.run([sys.executable, "-c", "import sys, cuflow; from cuflow import keras; "
                           "print('h5py' in sys.modules)"], capture_output=True, text=True, check=True,
                          cwd=os.path.dirname(os.path.dirname(cuflow.__file__)))
    assert done.stdout.strip() == "False"
