# SPDX-License-Identifier: Apache-2.0
from nova_postcopy import exception
from nova_postcopy import instance_mode
from nova_postcopy.tests.unit import base


class TestResolve(base.TestCase):

    def test_default(self):
        self.assertEqual(('allowed', 'default'), instance_mode.resolve())

    def test_flavor_overrides_image(self):
        mode, where = instance_mode.resolve(
            {'postcopy:mode': 'forbidden'}, {'postcopy_mode': 'required'})
        self.assertEqual('forbidden', mode)
        self.assertIn('overrides image property postcopy_mode=required',
                      where)

    def test_image_alone(self):
        self.assertEqual('required', instance_mode.resolve(
            {}, {'postcopy_mode': 'required'})[0])

    def test_bad_image_value_names_where(self):
        error = self.assertRaises(exception.InvalidPostcopyMode,
                                  instance_mode.resolve, {},
                                  {'postcopy_mode': 'sometimes'})
        self.assertIn('sometimes (image property postcopy_mode)', str(error))
        self.assertIn('forbidden, allowed, required', str(error))


class TestNovaApiValidator(base.TestCase):
    """Through Nova 34's own extra-spec validation, as nova-api runs it."""

    def setUp(self):
        super().setUp()
        from nova.api.validation.extra_specs import validators
        self.validators = validators
        from nova import exception as nova_exception
        self.nova_exception = nova_exception

    def test_registered_under_nova_namespace(self):
        self.assertIn('postcopy:mode', self.validators.VALIDATORS)

    def test_good_values_pass(self):
        for value in instance_mode.MODES:
            self.validators.validate('postcopy:mode', value)

    def test_bad_value_refused_when_set(self):
        error = self.assertRaises(self.nova_exception.ValidationError,
                                  self.validators.validate, 'postcopy:mode',
                                  'maybe')
        self.assertIn("'maybe' is not one of: forbidden, allowed, required",
                      str(error))

    def test_unknown_key_in_our_namespace_refused(self):
        self.assertRaises(self.nova_exception.ValidationError,
                          self.validators.validate, 'postcopy:moed',
                          'allowed')
