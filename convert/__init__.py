"""Conversion layer: trained models to float and full-int8 TFLite, with verification."""
