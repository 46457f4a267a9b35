def test_the_python_api_imports_from_detbox_apis():
    import detbox.apis as apis

    assert callable(apis.init_detector) and callable(apis.inference_detector)
    assert callable(apis.async_inference_detector) and callable(apis.show_result)
