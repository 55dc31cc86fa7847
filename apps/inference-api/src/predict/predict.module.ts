import { Module } from '@nestjs/common';
import { OpenAIModule } from '../openai/openai.module.js';
import { PredictController } from './predict.controller.js';
import { PredictService } from './predict.service.js';

@Module({ imports: [OpenAIModule], controllers: [PredictController], providers: [PredictService] })
export class PredictModule {}
