"""Tests of generate.py that need no cloudcoil: its strictness rule, and
that every vendored schema is what that rule and write_set leave (so a
schema edited by hand to accept more than the CRD fails here).

    python3 -m unittest discover -s deploy/schemas -p 'test_*.py'

(run by tests/tests/deploy.rs in `make test`).
"""
import json
import os
import unittest

import generate

HERE = os.path.dirname(os.path.abspath(__file__))


class Strict(unittest.TestCase):
    def test_an_object_with_properties_gets_additional_properties_false(self):
        got = generate.strict({"type": "object", "properties": {"a": {"type": "string"}}})
        self.assertIs(got["additionalProperties"], False)

    def test_an_open_map_keeps_its_additional_properties(self):
        node = {"type": "object", "properties": {}, "additionalProperties": {"type": "string"}}
        self.assertEqual(generate.strict(node)["additionalProperties"], {"type": "string"})

    def test_an_object_without_properties_stays_open(self):
        self.assertNotIn("additionalProperties", generate.strict({"type": "object"}))

    def test_titles_and_defaults_are_dropped_at_every_depth(self):
        got = generate.strict({"title": "T", "items": [{"default": 1, "type": "integer"}]})
        self.assertEqual(got, {"items": [{"type": "integer"}]})


class VendoredSchemas(unittest.TestCase):
    def sets(self):
        for directory in generate.SETS:
            with open(os.path.join(HERE, directory, "index.json")) as f:
                index = json.load(f)
            yield directory, index

    def test_every_set_names_the_project_version_generate_py_pins(self):
        for directory, index in self.sets():
            _, package, (project, project_version) = generate.SETS[directory]
            self.assertEqual(index[project], project_version, directory)
            self.assertTrue(index["source"].startswith(package + " "), directory)

    def test_every_vendored_schema_is_a_fixed_point_of_strict_and_pins_its_kind(self):
        for directory, index in self.sets():
            self.assertTrue(index["kinds"], directory)
            for key, name in index["kinds"].items():
                api_version, kind = key.rsplit("/", 1)
                with open(os.path.join(HERE, directory, name)) as f:
                    schema = json.load(f)
                self.assertEqual(generate.strict(schema), schema, f"{directory}/{name}")
                self.assertEqual(schema["properties"]["apiVersion"], {"const": api_version})
                self.assertEqual(schema["properties"]["kind"], {"const": kind})
                self.assertLessEqual({"apiVersion", "kind", "metadata"}, set(schema["required"]))


if __name__ == "__main__":
    unittest.main()
